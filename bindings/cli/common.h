/* common: what the subcommands of the program share. */
#ifndef SHAZBOT_CLI_COMMON_H
#define SHAZBOT_CLI_COMMON_H

/* Prints `text` and returns 1 when argv holds --help or -h. */
int cli_wants_help(int argc, char **argv, const char *text);

/* Raises the soft limit on open files to the hard one (as Go programs do at start): every
 * client and every peer transfer is a descriptor, and the soft default (often 1,024) is the
 * first thing a busy node or store would run out of. For the program only: a host embedding
 * the library sets its own limits. */
void cli_raise_fd_limit(void);

#endif
