"""Console scripts: the io-pkt variants and the QNX tools, thin clients of the files."""
