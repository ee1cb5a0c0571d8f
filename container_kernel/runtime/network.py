"""The container's network: a new network namespace holds only `lo`, and it starts down.

Bringing lo up is one ioctl (what `ip link set lo up` ends in), done with the
raw _socket module: importing pyroute2 (netlink) costs ~200 ms, ten containers'
worth of start time; it is for configured links (veth pairs, addresses, routes).
"""

import fcntl
import struct

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def loopback_up():
    import _socket
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        ifreq = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))
    finally:
        s.close()
