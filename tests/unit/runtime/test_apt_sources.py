"""apt_sources.py: which mirror `rootfs build` uses, from both formats of apt's sources."""
from container_kernel.runtime import apt_sources as A

DEB822 = """Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: main
"""
ONE_LINE = """# a comment
deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main contrib
deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main
deb-src http://mirror.example/debian bookworm main
"""


def test_deb822_stanzas():
    sources = A.parse_deb822(DEB822)
    assert [(s.uri, s.suites) for s in sources] == [
        ("http://deb.debian.org/debian", ("bookworm", "bookworm-updates")),
        ("http://deb.debian.org/debian-security", ("bookworm-security",)),
        ("https://deb.nodesource.com/node_20.x", ("nodistro",))]


def test_one_line_format_with_options():
    sources = A.parse_one_line(ONE_LINE)
    assert [(s.uri, s.suites, s.components) for s in sources] == [
        ("http://mirror.example/debian", ("bookworm",), ("main", "contrib")),
        ("https://packages.cloud.google.com/apt", ("cloud-sdk-bookworm",), ("main",))]


def test_only_a_mirror_with_the_suite_and_main_fits():
    sources = A.parse_deb822(DEB822) + A.parse_one_line(ONE_LINE)
    assert A.mirrors_for("bookworm", sources) == ["http://deb.debian.org/debian",
                                                  "http://mirror.example/debian"]
    assert A.mirrors_for("trixie", sources) == []


def test_host_sources_reads_both(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d/debian.sources").write_text(DEB822)
    (tmp_path / "d/extra.list").write_text(ONE_LINE)
    (tmp_path / "d/ignored.save").write_text(ONE_LINE)
    found = A.host_sources(str(tmp_path / "sources.list"), str(tmp_path / "d"))
    assert len(found) == 5


def test_host_suite(tmp_path):
    (tmp_path / "os-release").write_text('NAME="Debian"\nVERSION_CODENAME=bookworm\n')
    assert A.host_suite(str(tmp_path / "os-release")) == "bookworm"
    assert A.host_suite(str(tmp_path / "missing")) is None
