"""The package's layout rules: a folder says where its code runs and whom it trusts.

    runtime/   host side; a container runtime that knows nothing of Jupyter
    kernel/    host side of the Jupyter kernel (kernelspec, provisioner, launcher, control server)
    inside/    runs inside the container, in ipykernel: the untrusted side
    protocol.py  the vocabulary both sides of the control socket share

Read from the source with ast, function-level imports included, so a rule broken
inside a function fails here as much as one at the top of a module.
"""

import ast
import os

import pytest

import container_kernel

PACKAGE = os.path.dirname(container_kernel.__file__)
MAX_LINES = 400


def modules():
    """{dotted name: path} of every module of the package."""
    out = {}
    for top, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(top, name), os.path.dirname(PACKAGE))[:-3]
                dotted = rel.replace(os.sep, ".")
                out[dotted[:-len(".__init__")] if dotted.endswith(".__init__") else dotted] = \
                    os.path.join(top, name)
    return out


MODULES = modules()


def imports_of(name, path):
    """The package's modules that `name` imports, anywhere in its source.

    `from pkg import x` imports the module pkg.x when there is one (as import-linter
    counts it), else pkg itself."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    is_package = path.endswith("__init__.py")
    here = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[:len(here.split(".")) - node.level + 1]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in MODULES:
                t = t.rpartition(".")[0]  # import a.b.c of a package's attribute
            if t and t != name:
                found.add(t)
    return found


GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


def test_the_package_has_the_three_rooms():
    for room in ("runtime", "kernel", "inside"):
        assert f"container_kernel.{room}" in MODULES
    assert "container_kernel.protocol" in MODULES and "container_kernel.cli" in MODULES
    assert not any(m.startswith("container_kernel.jupyter") for m in MODULES)


def test_no_import_cycles():
    """Tarjan's strongly connected components: any of more than one module is a cycle."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert cycles == []


def test_the_runtime_knows_nothing_outside_itself():
    bad = {m: sorted(d for d in deps if not d.startswith("container_kernel.runtime"))
           for m, deps in GRAPH.items() if m.startswith("container_kernel.runtime")}
    assert {m: d for m, d in bad.items() if d} == {}


FORBIDDEN_INSIDE = ("container_kernel.kernel", "container_kernel.runtime.launcher",
                    "container_kernel.runtime.init", "container_kernel.runtime.mounts",
                    "container_kernel.cli")


def test_the_inside_reaches_the_host_only_through_the_protocol():
    bad = {m: sorted(d for d in deps if any(d == f or d.startswith(f + ".") for f in FORBIDDEN_INSIDE))
           for m, deps in GRAPH.items() if m.startswith("container_kernel.inside")}
    assert {m: d for m, d in bad.items() if d} == {}


def test_the_protocol_is_shared_not_a_side():
    deps = GRAPH["container_kernel.protocol"]
    assert not any(d.startswith(("container_kernel.kernel", "container_kernel.inside")) for d in deps)


def test_dependencies_point_one_way():
    """cli -> kernel -> runtime: nothing below imports the CLI, the runtime no Jupyter code."""
    assert [m for m, deps in GRAPH.items() if "container_kernel.cli" in deps] == ["container_kernel.__main__"]
    kernel_users = [m for m, deps in GRAPH.items() if any(d.startswith("container_kernel.kernel")
                                                          for d in deps)]
    assert all(m.startswith("container_kernel.kernel") for m in kernel_users), kernel_users


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name):
    with open(MODULES[name]) as f:
        lines = sum(1 for _ in f)
    assert lines <= MAX_LINES, f"{name} has {lines} lines: it holds two concepts"


def test_the_checker_sees_a_cycle_and_a_forbidden_import(tmp_path):
    """The rules can fail: a function-level import is an import too."""
    a = tmp_path / "a.py"
    a.write_text("def f():\n    from container_kernel.runtime import launcher\n")
    MODULES["container_kernel.inside.fake_a"] = str(a)
    try:
        deps = imports_of("container_kernel.inside.fake_a", str(a))
    finally:
        del MODULES["container_kernel.inside.fake_a"]
    assert "container_kernel.runtime.launcher" in deps
