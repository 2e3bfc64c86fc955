// The error types the CLI's one error boundary knows how to print.

export const ExitCode = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2, // bad option, bad filter, unknown command
  ENVIRONMENT: 3, // not root, no BTF, kernel lacks what is needed
} as const;

export class NetwhyError extends Error {
  constructor(message: string, readonly exitCode: number = ExitCode.FAILURE, readonly hint?: string) {
    super(message);
  }
}

export class UsageError extends NetwhyError {
  constructor(message: string, hint?: string) {
    super(message, ExitCode.USAGE, hint);
  }
}

export class EnvironmentError extends NetwhyError {
  constructor(message: string, hint?: string) {
    super(message, ExitCode.ENVIRONMENT, hint);
  }
}

/** An error from libbpf or the kernel, as the addon throws it. */
export interface NativeError extends Error {
  errno?: number;
  code?: string;
  libbpfLog?: string;
}

export function isNativeError(e: unknown): e is NativeError {
  return e instanceof Error && typeof (e as NativeError).errno === 'number';
}
