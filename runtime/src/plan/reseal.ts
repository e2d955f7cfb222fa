/**
 * The reseal of a clone: the shell script the guest agent runs in a restored guest (as root,
 * fed on its standard input) so that the clone shares nothing with the capture or other clones.
 *
 * What it does, and why this way:
 * - machine-id and the random seed come from the host's CSPRNG (given here); the captured
 *   guest's SSH host keys are replaced by new ones (the key types the image's cloud-init makes:
 *   ed25519 and ECDSA), and sshd is reloaded so it serves them.
 * - The capture's user is removed (processes, home, sudoers entry); the machine's users are
 *   made with their keys, password hashes (the very hashes the seed carries) and sudo, its host
 *   name and /etc/hosts set: what the launcher's own cloud-config asks of cloud-init, applied
 *   directly. Rerunning cloud-init's four stages for that costs about 30 s of TCG (measured
 *   here: 2 minutes on a busy host), most of a cold boot, for the same result.
 * - USER_DATA can ask for anything cloud-init does (packages, write_files, runcmd, scripts), so
 *   when it is given, cloud-init runs once more as a new instance, from this machine's seed
 *   (the meta-data, user-data and network-config a cold boot would read): its result is a
 *   cold boot's. The seed is handed over as files in cloud-init's seed folder, read with the
 *   seed disk turned off: the guest's kernel still holds the capture's seed disk (its size and
 *   any cache), so reading the new disk there could mix the two. The folder and the drop-in go
 *   at the end, so a later boot reads its seed disk as usual.
 * - A later cold boot of the clone finds its own instance-id on the seed disk and applies the
 *   same users, keys and host name again: harmless, and host keys are kept (ssh_deletekeys false).
 */
export interface ResealUser {
  name: string;
  /** A crypt hash (the seed's hashed_passwd); absent: the password is locked. */
  passwordHash?: string;
  sshKeys: string[];
  sudo: boolean;
}

export interface ResealInput {
  hostname: string;
  users: ResealUser[];
  /** USER_DATA was given: cloud-init applies the whole seed once more. */
  userData: boolean;
  seed: { metaData: string; userData: string; networkConfig: string };
  /** 32 lower-case hex digits. */
  machineId: string;
  /** Random bytes for the guest's entropy pool and its saved seed (base64). */
  randomSeed: string;
  captureUser: string;
  captureHostname: string;
}

/** The drop-in that points cloud-init at the seed folder only, for the reseal's run. */
export const RESEAL_DROP_IN = "/etc/cloud/cloud.cfg.d/99-devmachines-reseal.cfg";
const SEED_DIR = "/var/lib/cloud/seed/nocloud";
const SUDOERS = "/etc/sudoers.d/90-cloud-init-users";

const b64 = (text: string) => Buffer.from(text).toString("base64");
/** A value in single quotes, as the shell reads it literally. */
const quoted = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;
const USER_NAME = /^[a-z_][a-z0-9_-]*[$]?$/;

export function resealScript(input: ResealInput): string {
  if (!/^[0-9a-f]{32}$/.test(input.machineId)) throw new Error("machineId must be 32 lower-case hex digits");
  for (const name of [input.captureUser, ...input.users.map((user) => user.name)]) {
    if (!USER_NAME.test(name)) throw new Error(`not a user name: ${JSON.stringify(name)}`);
  }
  const file = (path: string, content: string) => `printf '%s' ${quoted(b64(content))} | base64 -d > ${path}`;
  const host = quoted(input.hostname);
  const users = input.users.flatMap((user) => {
    const home = `$(getent passwd ${user.name} | cut -d: -f6)`;
    return [
      `id -u ${user.name} >/dev/null 2>&1 || useradd -m -s /bin/bash ${user.name}`,
      user.passwordHash ? `usermod -p ${quoted(user.passwordHash)} ${user.name}` : `usermod -L ${user.name}`,
      ...(user.sudo ? [`printf '%s\\n' ${quoted(`${user.name} ALL=(ALL) NOPASSWD:ALL`)} >> ${SUDOERS}`] : []),
      `h=${home}; install -d -m 700 -o ${user.name} -g ${user.name} "$h/.ssh"`,
      `${file(`"$h/.ssh/authorized_keys"`, user.sshKeys.map((key) => `${key}\n`).join(""))}; chown ${user.name}:${user.name} "$h/.ssh/authorized_keys"; chmod 600 "$h/.ssh/authorized_keys"`,
    ];
  });
  const passwordLogin = input.users.some((user) => user.passwordHash !== undefined);
  return [
    "set -eu",
    "umask 022",
    "step() { printf '%s %s\\n' \"$(cut -d' ' -f1 /proc/uptime)\" \"$*\"; }",
    "step identity",
    `printf '%s\\n' ${input.machineId} > /etc/machine-id`,
    `if [ -f /var/lib/dbus/machine-id ] && [ ! -L /var/lib/dbus/machine-id ]; then printf '%s\\n' ${input.machineId} > /var/lib/dbus/machine-id; fi`,
    `printf '%s' ${quoted(input.randomSeed)} | base64 -d > /dev/urandom`,
    `if [ -d /var/lib/systemd ]; then (umask 077; printf '%s' ${quoted(input.randomSeed)} | base64 -d > /var/lib/systemd/random-seed); fi`,
    "rm -f /etc/ssh/ssh_host_*",
    // The keys are made while the users are (two vCPUs); sshd is reloaded once both are done.
    "(for type in ed25519 ecdsa; do ssh-keygen -q -t $type -N '' -C root -f /etc/ssh/ssh_host_${type}_key; done) & keys=$!",
    "step users",
    `if id -u ${input.captureUser} >/dev/null 2>&1; then pkill -KILL -u ${input.captureUser} || true; userdel -r -f ${input.captureUser} 2>/dev/null || userdel -f ${input.captureUser}; fi`,
    `rm -f ${SUDOERS}`,
    `: > ${SUDOERS}; chmod 440 ${SUDOERS}`,
    ...users,
    `printf 'PasswordAuthentication %s\\n' ${passwordLogin ? "yes" : "no"} > /etc/ssh/sshd_config.d/50-cloud-init.conf`,
    "step hostname",
    `printf '%s\\n' ${host} > /etc/hostname`,
    `hostname ${host}`,
    `grep -v -w -F ${quoted(input.captureHostname)} /etc/hosts > /etc/hosts.devmachines || true`,
    `printf '127.0.1.1 %s %s\\n' ${host} ${host} >> /etc/hosts.devmachines && mv /etc/hosts.devmachines /etc/hosts`,
    "wait $keys",
    // sshd loads its host keys when it starts: SIGHUP makes the listener re-exec and serve the
    // new ones (systemctl costs a second under TCG; it is the fallback).
    `if [ -s /run/sshd.pid ] && kill -HUP "$(cat /run/sshd.pid)" 2>/dev/null; then :; else systemctl reload ssh 2>/dev/null || systemctl restart ssh; fi`,
    ...(input.userData
      ? [
          "step seed",
          `rm -rf ${SEED_DIR} && mkdir -p ${SEED_DIR} && chmod 700 ${SEED_DIR}`,
          file(`${SEED_DIR}/meta-data`, input.seed.metaData),
          file(`${SEED_DIR}/user-data`, input.seed.userData),
          file(`${SEED_DIR}/network-config`, input.seed.networkConfig),
          `printf '%s\\n' 'datasource_list: [NoCloud]' 'datasource:' '  NoCloud:' '    fs_label: null' > ${RESEAL_DROP_IN}`,
          `trap 'rm -f ${RESEAL_DROP_IN}; rm -rf ${SEED_DIR}' EXIT`,
          // What `cloud-init clean` removes (all but the seed), without its 10 s of Python under
          // TCG: the capture's cached datasource and instance would otherwise be taken as current.
          "find /var/lib/cloud -mindepth 1 -maxdepth 1 ! -name seed -exec rm -rf {} +",
          "rm -f /run/cloud-init/.instance-id /run/cloud-init/.ds-identify.result /run/cloud-init/status.json /run/cloud-init/result.json",
          "step cloud-init local",
          "cloud-init init --local >/dev/null",
          "step cloud-init network",
          "cloud-init init >/dev/null",
          "step cloud-init config",
          "cloud-init modules --mode=config >/dev/null",
          "step cloud-init final",
          "cloud-init modules --mode=final >/dev/null",
        ]
      : []),
    "step done",
    "",
  ].join("\n");
}
