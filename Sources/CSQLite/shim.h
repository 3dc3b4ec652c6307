#include <sqlite3.h>

// sqlite3_db_config is variadic, which Swift cannot call; these wrappers fix the argument types.
static inline int csqlite_db_config_flag(sqlite3 *db, int op, int value) {
    int out = 0;
    return sqlite3_db_config(db, op, value, &out);
}

static inline int csqlite_wal_autocheckpoint_off(sqlite3 *db) {
    return sqlite3_wal_autocheckpoint(db, 0);
}
