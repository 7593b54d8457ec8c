"""Small parsing helpers shared by ifconfig and route."""

import ipaddress

from .common import ToolError


def netmask_prefix(text: str) -> int:
    """255.255.0.0 or 0xffff0000 -> 16; a non-contiguous mask is an error."""
    try:
        value = int(text, 16) if text.lower().startswith("0x") else int(ipaddress.IPv4Address(text))
    except ValueError:
        raise ToolError(f"bad netmask: {text}") from None
    inverted = ~value & 0xFFFFFFFF
    if value >> 32 or inverted & (inverted + 1):
        raise ToolError(f"bad netmask: {text}")
    return 32 - inverted.bit_length()
