// What a socket's state and error numbers mean, as the kernel and libc name them.

const TCP_STATES = ['', 'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT', 'CLOSE', 'CLOSE_WAIT', 'LAST_ACK', 'LISTEN', 'CLOSING', 'NEW_SYN_RECV'];

export const TCP_SYN_SENT = 2;
export const TCP_CLOSE = 7;

export function tcpStateName(n: number): string {
  return TCP_STATES[n] || `state ${n}`;
}

const ERRNO: Record<number, [string, string]> = {
  1: ['EPERM', 'Operation not permitted'],
  13: ['EACCES', 'Permission denied'],
  22: ['EINVAL', 'Invalid argument'],
  90: ['EMSGSIZE', 'Message too long'],
  101: ['ENETUNREACH', 'Network is unreachable'],
  104: ['ECONNRESET', 'Connection reset by peer'],
  110: ['ETIMEDOUT', 'Connection timed out'],
  111: ['ECONNREFUSED', 'Connection refused'],
  113: ['EHOSTUNREACH', 'No route to host'],
};

/** "EHOSTUNREACH (No route to host)" for 113 (or -113). */
export function errnoText(n: number): string {
  const e = ERRNO[Math.abs(n)];
  return e ? `${e[0]} (${e[1]})` : `errno ${Math.abs(n)}`;
}

/**
 * The error connect() or sendmsg() returns when the output route lookup
 * failed with this fib_table_lookup error: a miss in every table (-EAGAIN
 * per table) is ENETUNREACH; an unreachable, prohibit or blackhole route
 * gives its own.
 */
export function lookupErrno(fibErr: number): number {
  return fibErr === -11 ? 101 : -fibErr;
}
