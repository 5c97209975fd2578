/* Between the two halves of a migration's source (migrate.h). */
#ifndef VMM_MIGRATE_PRIV_H
#define VMM_MIGRATE_PRIV_H

/* The migration's thread (src/migrate.c), started by migrate_init(). */
void *migrate_thread(void *arg);

#endif
