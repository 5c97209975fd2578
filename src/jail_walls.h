/* The jail's walls (src/jail_walls.c), for src/jail.c. */
#ifndef VMM_JAIL_WALLS_H
#define VMM_JAIL_WALLS_H

#include <stdbool.h>
#include <sys/types.h>

#include "jail.h"

struct vmm_config;

/* Who the process becomes: drop (started as root) to uid/gid. */
struct jail_who {
	bool drop;
	uid_t uid;
	gid_t gid;
};

/* Raise every wall, in order (one thread only). 0, or -errno with why. */
int jail_walls(const struct jail_who *w, const struct vmm_config *cfg, struct jail_report *rep,
	       char *why, size_t len) WUR;
/* Is path dir or beneath it (by their text)? */
bool jail_beneath(const char *path, const char *dir);

#endif
