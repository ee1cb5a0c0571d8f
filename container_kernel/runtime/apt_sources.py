"""Which Debian mirror `rootfs build` fetches from: the one the host's apt already uses.

apt has two formats (sources.list(5)): one-line `deb [opts] URI SUITE COMPONENT...`
in sources.list and *.list, and deb822 stanzas (Types/URIs/Suites/Components)
in *.sources, Debian 12's default. A mirror fits a suite when one of its entries
names that suite with the main component; third-party repositories (a cloud SDK,
nodesource) name suites of their own and so never fit.
"""

import os
from collections import namedtuple

SOURCES = "/etc/apt/sources.list"
SOURCES_DIR = "/etc/apt/sources.list.d"


class Source(namedtuple("Source", "uri suites components file")):
    __slots__ = ()


def parse_one_line(text, file="sources.list"):
    out = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # [arch=amd64 signed-by=...]
            while words and not words[0].endswith("]"):
                words.pop(0)
            words = words[1:]
        if len(words) >= 3:
            out.append(Source(words[0].rstrip("/"), (words[1],), tuple(words[2:]), file))
    return out


def parse_deb822(text, file="debian.sources"):
    out = []
    for stanza in text.split("\n\n"):
        fields, last = {}, None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and last:  # a continuation line
                fields[last] += " " + line.strip()
                continue
            name, _, value = line.partition(":")
            last = name.strip().lower()
            fields[last] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
            continue
        for uri in fields.get("uris", "").split():
            out.append(Source(uri.rstrip("/"), tuple(fields.get("suites", "").split()),
                              tuple(fields.get("components", "").split()), file))
    return out


def host_sources(etc_list=SOURCES, etc_dir=SOURCES_DIR):
    found = []
    files = [etc_list] + sorted(os.path.join(etc_dir, n) for n in _listdir(etc_dir))
    for path in files:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        if path.endswith(".sources"):
            found += parse_deb822(text, path)
        elif path == etc_list or path.endswith(".list"):
            found += parse_one_line(text, path)
    return found


def mirrors_for(suite, sources):
    """The URIs whose entries name suite with main, in the order apt lists them."""
    out = []
    for s in sources:
        if suite in s.suites and "main" in s.components and s.uri not in out \
                and s.uri.startswith(("http://", "https://")):
            out.append(s.uri)
    return out


def host_suite(os_release="/etc/os-release"):
    """The host's own codename (bookworm): the default suite."""
    try:
        with open(os_release) as f:
            for line in f:
                if line.startswith("VERSION_CODENAME="):
                    return line.split("=", 1)[1].strip().strip('"') or None
    except OSError:
        pass
    return None


def reachable(uri, suite, timeout=10):
    """None if URI/dists/SUITE/Release answers, else why not (one short phrase)."""
    import urllib.error
    import urllib.request
    url = f"{uri}/dists/{suite}/Release"
    try:
        req = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(req, timeout=timeout):
            return None
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code} for {url}"
    except (urllib.error.URLError, OSError) as e:
        return f"{url}: {getattr(e, 'reason', e)}"


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []
