/* Benchmark launcher: runs one command with stdin from a file and prints
 * "<elapsed_us> <maxrss_kb> <exit_status>" (elapsed from before fork to
 * after wait, max RSS of the child as wait4 reports it).
 *
 *   spawn STDIN_FILE [--ping NETNS_PATH ADDRESS] -- PROGRAM ARGS...
 *
 * With --ping, after the command exits the launcher enters NETNS_PATH and
 * sends ICMPv6 echo requests to ADDRESS every 0.2 ms until one is answered
 * (5 s at most); the first number is then the time from before fork until
 * that reply. Built static and tiny, so that the RSS it has when it forks
 * (which the kernel counts into the child's peak) stays small. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static int ping_until_answered(const char *netns, const char *address, long long deadline) {
  int ns = open(netns, O_RDONLY | O_CLOEXEC);
  if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) return -1;
  int s = socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
  if (s < 0) return -1;
  struct icmp6_filter filter;
  ICMP6_FILTER_SETBLOCKALL(&filter);
  ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &filter);
  setsockopt(s, IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof filter);
  struct sockaddr_in6 to = {.sin6_family = AF_INET6};
  if (inet_pton(AF_INET6, address, &to.sin6_addr) != 1) return -1;
  struct icmp6_hdr echo = {.icmp6_type = ICMP6_ECHO_REQUEST};
  echo.icmp6_id = htons((unsigned short)getpid());
  for (unsigned short seq = 1; now_us() < deadline; seq++) {
    echo.icmp6_seq = htons(seq);
    sendto(s, &echo, sizeof echo, 0, (struct sockaddr *)&to, sizeof to);
    struct pollfd p = {.fd = s, .events = POLLIN};
    if (poll(&p, 1, 0) > 0 || (usleep(200), poll(&p, 1, 0) > 0)) {
      struct icmp6_hdr reply;
      if (recv(s, &reply, sizeof reply, 0) >= (ssize_t)sizeof reply &&
          reply.icmp6_type == ICMP6_ECHO_REPLY && reply.icmp6_id == echo.icmp6_id)
        return 0;
    }
  }
  return -1;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: spawn STDIN_FILE [--ping NETNS ADDRESS] -- PROGRAM ARGS...\n");
    return 2;
  }
  const char *netns = NULL, *address = NULL;
  int i = 2;
  if (strcmp(argv[i], "--ping") == 0 && argc > i + 3) {
    netns = argv[i + 1];
    address = argv[i + 2];
    i += 3;
  }
  if (strcmp(argv[i], "--") != 0 || i + 1 >= argc) return 2;
  char **command = argv + i + 1;
  int input = open(argv[1], O_RDONLY | O_CLOEXEC);
  if (input < 0) return 2;
  int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);

  long long start = now_us();
  pid_t pid = fork();
  if (pid == 0) {
    dup2(input, 0);
    dup2(devnull, 1);
    execvp(command[0], command);
    _exit(127);
  }
  int status = 0;
  struct rusage usage;
  wait4(pid, &status, 0, &usage);
  long long end = now_us();
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (netns && code == 0) {
    if (ping_until_answered(netns, address, end + 5000000) != 0) code = 200;
    end = now_us();
  }
  printf("%lld %ld %d\n", end - start, usage.ru_maxrss, code);
  return 0;
}
