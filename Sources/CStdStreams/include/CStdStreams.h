#ifndef KISVAULT_CSTDSTREAMS_H
#define KISVAULT_CSTDSTREAMS_H

/// Bit n set: file descriptor n (0, 1 or 2) was closed when the process started and now
/// holds /dev/null. Filled by a constructor that runs before the Swift runtime (and
/// libdispatch, which would otherwise take descriptor 1 for an eventfd).
int kisvault_closed_std_fds(void);

#endif
