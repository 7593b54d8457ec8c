"""IPv6 (io-pkt-v6-hc only): input/output, extension headers, fragments, ICMPv6, ND, DAD."""
