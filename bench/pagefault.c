/*
 * pagefault.c: what a first touch of a shared-memory page costs on this
 * machine, built and run by bench/run.
 *
 * connlog's ring lives in PostgreSQL's shared memory, an anonymous shared
 * mapping.  Linux does not copy such page tables on fork, so every backend
 * maps each ring page the first time it touches it, and the very first
 * touch after server start also allocates and zeroes the page.  This
 * program times, on a 64 MB shared mapping: the first touch (allocate and
 * map), a child's write fault (map one page), and a child's read of each
 * page followed by a write, the path connlog_enqueue() takes: its prefault
 * reads the ring before taking the lock, and a read fault maps a window of
 * pages at once (Linux fault-around).  The last figure times a new
 * backend's first sweep of the ring.
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
	pid = fork();
	if (pid == 0)
	{
		long		sum = 0;

		t = now();
		for (size_t i = 0; i < n; i++)
			sum += p[i * page];
		for (size_t i = 0; i < n; i++)
			p[i * page] = 4;
		printf("child_read_us %.2f\n", (now() - t) / n * 1e6);
		fflush(stdout);
		_exit(sum == 0);
	}
	waitpid(pid, NULL, 0);
	return 0;
}
