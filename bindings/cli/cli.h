/* cli: the subcommands, for main.c to call; argv[0] is the subcommand's name. Each returns the
 * exit status. What they share is in common.h. */
#ifndef SHAZBOT_CLI_H
#define SHAZBOT_CLI_H

int cli_store(int argc, char **argv);
int cli_members(int argc, char **argv);
int cli_control(int argc, char **argv);
int cli_health(int argc, char **argv);
int cli_watch(int argc, char **argv);
int cli_simulate(int argc, char **argv);

#endif
