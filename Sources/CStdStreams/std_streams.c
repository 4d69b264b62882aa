// Runs before main and before libdispatch opens anything: a closed stdin, stdout or stderr
// is filled with /dev/null here, so that no descriptor kisvault opens later (the vault,
// an eventfd, a socket) can become "standard output" and receive a key printed there.
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include "CStdStreams.h"

static int closed_mask = 0;

__attribute__((constructor)) static void kisvault_fill_std_fds(void) {
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
        int opened = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (opened < 0) continue;
        if (opened != fd) {
            dup2(opened, fd);
            close(opened);
        }
        closed_mask |= 1 << fd;
    }
}

int kisvault_closed_std_fds(void) { return closed_mask; }
