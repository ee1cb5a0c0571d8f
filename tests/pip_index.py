"""A package index on this machine, for %pip tests and the benchmark: wheels and sdists made
here, served by http.server from a network namespace the test makes (ck-test-pip*), which
stands for the outside world: an egress container reaches it, the host's own addresses no."""
import base64
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile


def wheel(where, name, version, code):
    """A pure-Python wheel of one module `name` whose source is code; its file name."""
    dist = f"{name}-{version}.dist-info"
    files = {f"{name}.py": code,
             f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: ck-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join(record + [f"{dist}/RECORD,,"]) + "\n"
    filename = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(where, filename), "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return filename


def sdist(where, name, version, setup_py):
    """An sdist whose setup.py is setup_py: pip runs it in the build step."""
    filename = f"{name}-{version}.tar.gz"
    with tarfile.open(os.path.join(where, filename), "w:gz") as t:
        for path, text in ((f"{name}-{version}/setup.py", setup_py),
                           (f"{name}-{version}/PKG-INFO",
                            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")):
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return filename


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class Index:
    """http.server of a dir in network namespace NETNS, at http://NS_ADDR:PORT/ (a --find-links page)."""

    def __init__(self, directory, netns="ck-test-pip", host_end="ck-test-pip0", ns_end="ck-test-pip1",
                 net="10.213.8"):
        self.directory, self.netns = str(directory), netns
        self.host_end, self.ns_end = host_end, ns_end
        self.host_addr, self.addr = f"{net}.1", f"{net}.2"
        self.port = 8000
        self.server = None

    @property
    def url(self):
        return f"http://{self.addr}:{self.port}/"

    def start(self):
        ip("netns", "del", self.netns, check=False)  # a previous run's, by our own name only
        ip("netns", "add", self.netns)
        ip("link", "add", self.host_end, "type", "veth", "peer", "name", self.ns_end, "netns", self.netns)
        ip("addr", "add", f"{self.host_addr}/30", "dev", self.host_end)
        ip("link", "set", self.host_end, "up")
        for cmd in (("addr", "add", f"{self.addr}/30", "dev", self.ns_end), ("link", "set", self.ns_end, "up"),
                    ("link", "set", "lo", "up")):
            ip("-n", self.netns, *cmd)
        self.server = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, sys.executable, "-m", "http.server", str(self.port),
             "--bind", self.addr, "--directory", self.directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        import urllib.request
        while True:
            try:
                urllib.request.urlopen(self.url, timeout=1).read()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self):
        if self.server:
            self.server.kill()
            self.server.wait()
        ip("netns", "del", self.netns, check=False)  # takes the veth pair with it
        ip("link", "del", self.host_end, check=False)


HOSTILE_SETUP = textwrap.dedent("""
    # The build step of a hostile sdist: each attempt must fail, and it says how.
    import os, socket, sys
    def attempt(what, fn):
        try:
            print(f"CK-LEAK {{what}}: {{fn()!r}}", flush=True)
        except Exception as e:
            print(f"CK-BLOCKED {{what}}: {{type(e).__name__}}", flush=True)
    attempt("read", lambda: open({marker!r}).read())
    attempt("write", lambda: open(os.path.join(sys.base_prefix, {pth!r}), "w").write("import os"))
    attempt("write-prefix", lambda: open(os.path.join(sys.prefix, {pth!r}), "w").write("import os"))
    for addr in ({addrs}):
        attempt(f"connect {{addr}}", lambda: socket.create_connection((addr, {port}), timeout=3).recv(10))
    {after}
    sys.exit("the hostile build step ends here")
""")
