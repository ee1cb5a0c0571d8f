from make import code, md

CELLS = [
    md("""
# 7. Network namespaces

A network namespace has its own interfaces, addresses, routing table, firewall and
ports. A new one has a single interface, `lo`, down until someone brings it up, and
no route anywhere: a process in it can talk to itself and to nothing else. Docker
calls that `--network none`; this kernel has it too.
"""),
    code("""
import errno, json, os, socket, time
import lesson
print("mode:", lesson.MODE)
print("interfaces:", [name for _, name in socket.if_nameindex()])
print(open("/proc/self/net/tcp").read())
"""),
    md("""
`/proc/self/net/tcp` lists the TCP sockets of **this** namespace (addresses in hex:
`0100007F:1F40` is 127.0.0.1:8000). The host's own sockets are not there.

## Two containers, one private network

Containers that are given the same `network="private:NAME"` share one network
namespace (as Kubernetes does with the containers of a pod, or Docker with
`--network container:ID`). A server in one, a client in the other, talking over
their shared `lo`:
"""),
    code("""
%%contained_only
from container_kernel import demo
SERVER = r'''
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 8000)); s.listen()
print("listening", flush=True)
conn, _ = s.accept()
conn.sendall(b"pong to " + conn.recv(100))
'''
server = demo.start(["python3", "-u", "-c", SERVER], network="private:lab", timeout=30)
for _ in range(100):
    server.poll()
    if "listening" in server.stdout:
        break
    time.sleep(0.1)
print("server:", server.stdout.strip())
"""),
    code("""
%%contained_only
CLIENT = r'''
import socket
c = socket.create_connection(("127.0.0.1", 8000), timeout=5)
c.sendall(b"ping"); print(c.recv(100).decode())
'''
client = demo.run(["python3", "-u", "-c", CLIENT], network="private:lab")
print("client:", client.stdout.strip() or client.stderr.strip()[-300:])
server_result = server.wait()
same = server_result.namespaces["net"] == client.namespaces["net"]
print("one network namespace:", same, "| this kernel's is another:",
      client.namespaces["net"] != client.kernel_namespaces["net"])
lesson.claim("private_network", {"reply": client.stdout.strip(), "shared_netns": same})
"""),
    md("""
## ...and no way out

The same client code, in a container with a network of its own (`network="none"`):
nothing listens on *its* `lo`. And neither container has a route to the host: an
address outside gets `ENETUNREACH` at once (there is no interface to send it on).
"""),
    code("""
%%contained_only
PROBE = r'''
import errno, socket
for where in (("127.0.0.1", 8000), ("10.0.2.2", 80), ("1.1.1.1", 53)):
    try:
        socket.create_connection(where, timeout=3).close(); print(where[0], "connected")
    except OSError as e:
        print(where[0], errno.errorcode.get(e.errno, e.errno))
'''
alone = demo.run(["python3", "-u", "-c", PROBE], network="none")
print(alone.stdout)
outcome = dict(line.split() for line in alone.stdout.splitlines())
lesson.claim("isolated", outcome)
"""),
    md("""
## Why this kernel's own connection uses ipc sockets

Jupyter talks to a kernel over ZeroMQ sockets, normally TCP on 127.0.0.1. But the
host's 127.0.0.1 is in the host's network namespace, and this kernel's `lo` is
another one: a TCP port bound in here cannot be reached from the Jupyter server. So
the provisioner asks for **ipc** sockets: unix sockets, which are files, in a
directory bound into the container. A unix socket crosses network namespaces the way
a file does, through the mount (08-the-kernel-you-are-in shows the connection file).

## Exercise: join the network

Start a server on `private:lab` again (re-run the server cell), then write the
`demo.run` call of a client that joins it and gets its reply. Keep its Result in
`answer`.
"""),
    code("""
%%contained_only
answer = ...   # demo.run([...], network=...)
""", solution="""
%%contained_only
server = demo.start(["python3", "-u", "-c", SERVER], network="private:lab", timeout=30)
for _ in range(100):
    server.poll()
    if "listening" in server.stdout:
        break
    time.sleep(0.1)
answer = demo.run(["python3", "-u", "-c", CLIENT], network="private:lab")
server.wait()
"""),
    code("""
%%contained_only
# check your work
lesson.check(answer if answer is ... else answer.stdout.strip(), "pong to ping", "join",
             "the client needs the same network='private:lab' as the server")
"""),
]
