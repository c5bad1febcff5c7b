/*
 * pagefault.c: what a first touch of a shared-memory page costs on this
 * machine, built and run by bench/run.
 *
 * connlog's ring lives in PostgreSQL's shared memory, an anonymous shared
 * mapping.  Linux does not copy such page tables on fork, so every backend
 * takes a minor fault the first time it touches each ring page, and the
 * very first touch after server start also allocates and zeroes the page.
 * connlog_enqueue() copies into the ring while it holds the ring's LWLock,
 * so these faults are taken inside the critical section.  This program
 * times both kinds of fault on a 64 MB shared mapping.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

int
main(void)
{
	size_t		size = (size_t) 64 << 20;
	long		page = sysconf(_SC_PAGESIZE);
	size_t		n = size / page;
	volatile char *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
							MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	double		t;
	pid_t		pid;

	if (p == MAP_FAILED)
		return 1;
	t = now();
	for (size_t i = 0; i < n; i++)
		p[i * page] = 1;
	printf("first_touch_us %.2f\n", (now() - t) / n * 1e6);
	fflush(stdout);
	pid = fork();
	if (pid == 0)
	{
		t = now();
		for (size_t i = 0; i < n; i++)
			p[i * page] = 2;
		printf("child_touch_us %.2f\n", (now() - t) / n * 1e6);
		t = now();
		for (size_t i = 0; i < n; i++)
			p[i * page] = 3;
		printf("mapped_touch_us %.3f\n", (now() - t) / n * 1e6);
		fflush(stdout);
		_exit(0);
	}
	waitpid(pid, NULL, 0);
	return 0;
}
