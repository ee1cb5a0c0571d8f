"""The runtime's one exception type.

Every failure the runtime reports to a user is a ContainerError whose message is
one line a user can act on: it names the bad value and what is allowed. The
exit code follows `docker run`: 2 for a usage error (nothing was created),
125 when the runtime itself failed, 126/127 when the command cannot be run.
"""

USAGE = 2
RUNTIME = 125
NOT_EXECUTABLE = 126
NOT_FOUND = 127


class ContainerError(Exception):
    def __init__(self, message: str, exit_code: int = RUNTIME):
        super().__init__(message)
        self.exit_code = exit_code


def usage(message: str) -> ContainerError:
    return ContainerError(message, USAGE)
