// Defaults the command line shows in --help, apart from the commands (which load only when run).

/** Where `netwhy agent` serves /metrics unless --listen says otherwise. */
export const DEFAULT_LISTEN = '127.0.0.1:9965';
