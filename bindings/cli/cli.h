/* cli: what the subcommands of the program share. */
#ifndef SHAZBOT_CLI_H
#define SHAZBOT_CLI_H

/* Prints `text` and returns 1 when argv holds --help or -h. */
int cli_wants_help(int argc, char **argv, const char *text);

/* The subcommands; argv[0] is the subcommand's name. Each returns the exit status. */
int cli_store(int argc, char **argv);
int cli_members(int argc, char **argv);
int cli_control(int argc, char **argv);
int cli_health(int argc, char **argv);

#endif
