package main

/*
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>

#define FIELDHUB_MALLOC_ARENAS 2

// fieldhub_limit_malloc_arenas caps the malloc arenas glibc may make (see
// mallocArenas below for why). It runs as the program loads, before the Go
// runtime starts its threads: glibc gives a thread its arena at its first
// malloc or free, which for a cgo thread is as it starts, and a thread
// keeps its arena, so a limit set from main would leave the first
// threads' arenas in place. An operator's own setting (MALLOC_ARENA_MAX,
// or glibc.malloc.arena_max in GLIBC_TUNABLES) wins.
static void __attribute__((constructor)) fieldhub_limit_malloc_arenas(void) {
#if defined(__GLIBC__) && defined(M_ARENA_MAX)
	const char *tunables = getenv("GLIBC_TUNABLES");
	if (getenv("MALLOC_ARENA_MAX") != NULL || (tunables != NULL && strstr(tunables, "arena_max") != NULL)) {
		return;
	}
	mallopt(M_ARENA_MAX, FIELDHUB_MALLOC_ARENAS);
#endif
}

// The number of malloc arenas glibc has made: malloc_info's <heap nr=...>.
static int fieldhub_malloc_arenas(void) {
#if defined(__GLIBC__)
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL) return -1;
	int err = malloc_info(0, f);
	fclose(f);
	int n = 0;
	for (char *p = buf; err == 0 && (p = strstr(p, "<heap nr=")) != NULL; p++) n++;
	free(buf);
	return err == 0 ? n : -1;
#else
	return -1;
#endif
}
*/
import "C"

// mallocArenas is the most malloc arenas the program lets glibc make (set
// in C as it loads, above). SQLite is the hub's C code, and Go runs it on
// whichever of its OS threads is free; glibc gives each thread an arena of
// its own, up to eight per CPU, and what a connection frees in one arena
// serves only that arena's threads, so the page caches' memory was held
// once per arena: in bench BenchmarkHubHTTPS's SDK-batch phase 7 arenas
// held 12-13 MiB, against 8-9 MiB in one (bench/README.md, issue 10,
// eighth round). Two, so that a reader's malloc need not wait for the
// writer's lock.
const mallocArenas = C.FIELDHUB_MALLOC_ARENAS

// countMallocArenas is how many arenas glibc has made so far, -1 when that
// is unknown (not glibc).
func countMallocArenas() int { return int(C.fieldhub_malloc_arenas()) }
