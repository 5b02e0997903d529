// Types of test/peers.mjs, for the unit test that drives its logic with injected commands.

export interface PackageLine {
  pkg: string;
  commands: string[];
  /** systemd services the package starts, stopped and disabled after installing it. */
  services?: string[];
}
export type Which = (command: string) => string | undefined;
export type Exec = (cmd: string, args: readonly string[], opts?: { quiet?: boolean }) => number;
export interface PeerIo {
  which: Which;
  exec: Exec;
  isRoot: boolean;
  env: Record<string, string | undefined>;
  say: (line: string) => void;
}

export const PACKAGE_LIST: string;
export const DRACHTIO_DEFAULT: string;
export const DRACHTIO_VENDOR: string;
export const SBIN: readonly string[];
export const SYSTEMD: string;
export function parsePackageList(text: string): PackageLine[];
export function whichOnDisk(command: string, path?: string): string | undefined;
export function missingPackages(list: readonly PackageLine[], which: Which): PackageLine[];
export function rootRunner(io: {
  isRoot: boolean;
  exec: Exec;
}): ((cmd: string, args: readonly string[]) => number) | undefined;
export function ensurePeers(
  io: PeerIo & { list: readonly PackageLine[]; exists: (file: string) => boolean },
): string[];
export function ensureDrachtio(io: PeerIo & { exists: (file: string) => boolean }): string | undefined;
