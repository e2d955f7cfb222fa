/**
 * The arguments of the components. These interfaces are also what the Pulumi
 * plugin's analyzer reads to build the schema for YAML, Python, Go and .NET,
 * so they follow its rules: interfaces only, no unions other than named
 * string-literal enums (the `as const` objects below) and `T | undefined`.
 */
import type * as pulumi from "@pulumi/pulumi";

/** How the virtual machine reaches the network. */
export const NetworkMode = {
  /** QEMU user networking: the VM sits behind the container; published ports reach it through forwards. SSH is forwarded from container port 22. */
  NAT: "NAT",
  /** The VM takes over the container's own IP address on its Docker network (a TAP bridged to eth0): every VM port is reachable there. */
  BRIDGE: "BRIDGE",
} as const;
/** How the virtual machine reaches the network. */
export type NetworkMode = (typeof NetworkMode)[keyof typeof NetworkMode];

/** Which QEMU accelerator to use. */
export const Accel = {
  /** KVM when it works, otherwise TCG with a warning (also when KVM fails seconds after start). */
  auto: "auto",
  /** KVM only: fail when /dev/kvm is missing or unusable. */
  kvm: "kvm",
  /** Software emulation (TCG): works everywhere, several times slower. */
  tcg: "tcg",
} as const;
/** Which QEMU accelerator to use. */
export type Accel = (typeof Accel)[keyof typeof Accel];

/** What stopping the container does to the guest (ON_STOP). */
export const OnStop = {
  /** An ACPI power-down; the next start boots the guest. */
  poweroff: "poweroff",
  /** Save the running guest beside its disk; the next start resumes it. */
  suspend: "suspend",
} as const;
/** What stopping the container does to the guest (ON_STOP). */
export type OnStop = (typeof OnStop)[keyof typeof OnStop];

/** Whether a new machine may start from the machine image's captured ready state (SNAPSHOT). */
export const Snapshot = {
  /** Restore the captured state and reseal it when size, accelerator and hardware match; boot otherwise. */
  auto: "auto",
  /** Always boot. */
  off: "off",
} as const;
/** Whether a new machine may start from the machine image's captured ready state (SNAPSHOT). */
export type Snapshot = (typeof Snapshot)[keyof typeof Snapshot];

/** The guest's CPU architecture (`uname -m` names). */
export const Arch = {
  /** 64-bit x86 (the default): `devmachines/debian:13`, QEMU's q35 machine, KVM on x86_64 hosts. */
  x86_64: "x86_64",
  /** 64-bit ARM: `devmachines/debian-arm64:13`, QEMU's virt machine with UEFI; TCG on x86_64 hosts, KVM on arm64 ones. */
  aarch64: "aarch64",
} as const;
/** The guest's CPU architecture (`uname -m` names). */
export type Arch = (typeof Arch)[keyof typeof Arch];

/** Transport protocol of a forwarded port. */
export const Protocol = {
  tcp: "tcp",
  udp: "udp",
} as const;
/** Transport protocol of a forwarded port. */
export type Protocol = (typeof Protocol)[keyof typeof Protocol];

/** Docker restart policy of the machine's container. */
export const RestartPolicy = {
  /** Never restart. */
  no: "no",
  // Identifier keys: Pulumi's schema analyzer drops quoted ones, which hid these two values from other languages.
  /** Restart when the launcher fails (a guest that powers itself off stays off). */
  onFailure: "on-failure",
  /** Restart always, also after the Docker daemon restarts, unless stopped by hand. */
  unlessStopped: "unless-stopped",
  /** Restart always. */
  always: "always",
} as const;
/** Docker restart policy of the machine's container. */
export type RestartPolicy = (typeof RestartPolicy)[keyof typeof RestartPolicy];

/** A user account created in the guest by cloud-init. */
export interface UserArgs {
  /** Linux user name: a lowercase letter or _, then up to 31 of a-z 0-9 _ -; not root. */
  name: pulumi.Input<string>;
  /** Password for console and SSH password login. Kept secret: the users travel to the container in a file (`USERS_FILE`), never in the environment. */
  password?: pulumi.Input<string>;
  /** A crypt(3) hash as /etc/shadow holds it (`mkpasswd -m sha-512`), instead of `password`. Kept secret too. */
  passwordHash?: pulumi.Input<string>;
  /** OpenSSH public keys allowed to log in as this user. */
  sshKeys?: pulumi.Input<pulumi.Input<string>[]>;
  /** Passwordless sudo. Default true. */
  sudo?: pulumi.Input<boolean>;
}

/** A port of the guest made reachable from outside (NAT mode). */
export interface PortArgs {
  /** The port inside the VM. */
  guestPort: pulumi.Input<number>;
  /** The port published on the Docker host. Default: Docker picks a free one. */
  hostPort?: pulumi.Input<number>;
  /** tcp (default) or udp. */
  protocol?: pulumi.Input<Protocol>;
  /** Host address to publish on, e.g. 127.0.0.1 to keep it local. Default: every address. */
  hostIp?: pulumi.Input<string>;
}

/** A label on the machine's container. */
export interface LabelArgs {
  /** Label key, e.g. `team`. */
  label: pulumi.Input<string>;
  /** Label value. */
  value: pulumi.Input<string>;
}

/** Everything one machine can be told. Shared by `DevMachine` and the template and overrides of `DevMachineGroup`. */
export interface MachineSettingsArgs {
  /** Virtual CPUs (a whole number, at least 1). Default 2. */
  cpu?: pulumi.Input<number>;
  /** Guest memory in Docker size syntax (`512M`, `4G`, `1.5GiB`; binary multiples), at least 128 MiB. Default `2G`. */
  memory?: pulumi.Input<string>;
  /** Guest disk size in Docker size syntax (`20G`). The disk grows when this grows and never shrinks. Default `20G`. */
  storage?: pulumi.Input<string>;
  /** The guest user's name (short form of `users` for one user). Default `dev` when neither `user` nor `users` is given. */
  user?: pulumi.Input<string>;
  /** Password of `user`. A Pulumi secret; reaches the container as a file (`PASSWORD_FILE`), never as plain environment. */
  password?: pulumi.Input<string>;
  /** crypt(3) hash of the password of `user`, instead of `password`. Kept secret like a password: reaches the container as a file (`PASSWORD_HASH_FILE`), never in the environment. */
  passwordHash?: pulumi.Input<string>;
  /** OpenSSH public keys of `user`. */
  sshKeys?: pulumi.Input<pulumi.Input<string>[]>;
  /** More users (or all of them, without `user`). Each needs a password, a password hash or SSH keys to log in. */
  users?: pulumi.Input<pulumi.Input<UserArgs>[]>;
  /** NAT (default) or BRIDGE. */
  network?: pulumi.Input<NetworkMode>;
  /** Guest ports to publish on the Docker host (NAT mode; in BRIDGE mode the VM owns the container's address instead). SSH is always published, see `sshPort`. */
  ports?: pulumi.Input<pulumi.Input<PortArgs>[]>;
  /** Host port to publish the guest's SSH on (NAT mode). Default: Docker picks a free one; read it from the `sshPort` output. */
  sshPort?: pulumi.Input<number>;
  /** Host address to publish the guest's SSH (and `ports` without `hostIp`) on. Default every address; `127.0.0.1` keeps it local. */
  sshHostIp?: pulumi.Input<string>;
  /**
   * The machine image. Default `devmachines/debian:13`, or `devmachines/debian-arm64:13` when
   * `arch` is `aarch64`. Any image built on `devmachines/runtime` works.
   */
  image?: pulumi.Input<string>;
  /**
   * The guest's architecture (`ARCH`): `x86_64` or `aarch64`. Default: the image's own (its
   * disk says which), x86_64 for an image that does not say. Given, it also picks the default
   * `image`, and the container refuses to start (exit 2) when the image is of another
   * architecture. An aarch64 guest on an x86_64 Docker host runs under TCG (software emulation).
   */
  arch?: pulumi.Input<Arch>;
  /** Keep the VM's disk in a Docker volume that outlives the container. Default true. */
  persistent?: boolean;
  /** Keep the disk volume when the stack is destroyed (Pulumi `retainOnDelete`). Default false. */
  keepDisk?: boolean;
  /** Extra cloud-config (YAML) or a script starting with `#!`, applied in addition to what the launcher generates. Reaches the container as a file, kept secret when given as a Pulumi secret. */
  userData?: pulumi.Input<string>;
  /** The VM's host name. Default: the machine's name. */
  hostname?: pulumi.Input<string>;
  /**
   * A raw VNC display, in the launcher's safe forms only (README, `VNC`): `[host]:N` (TCP port 5900+N),
   * `unix:NAME` (a socket in /run/vnc) or `none`, then known options such as `,share=force-shared`.
   * Publishes nothing by itself; add the VNC port to `ports` if you need it. Default: no display.
   */
  vnc?: pulumi.Input<string>;
  /**
   * The browser consoles: the guest's serial console (xterm.js) and screen (noVNC), served by
   * the launcher behind a token on container port 6080 (NAT mode only). Default: off.
   * The component's `consoleUrl` output holds the address with the token.
   */
  consoles?: ConsolesArgs;
  /** auto (default), kvm or tcg. */
  accel?: pulumi.Input<Accel>;
  /** Extra labels on the container (the component adds its own `dev.devmachines.*` labels). */
  labels?: pulumi.Input<pulumi.Input<LabelArgs>[]>;
  /** Docker restart policy. Default `unless-stopped` (a guest that powers itself off is started again; stop it with `docker stop`). */
  restart?: pulumi.Input<RestartPolicy>;
  /** Name of an existing Docker network to join (on the machine's Docker host). Default: Docker's default bridge. */
  dockerNetwork?: pulumi.Input<string>;
  /** Seconds the guest gets to power off cleanly on stop before QEMU is killed (GRACE_SECONDS). Default 60; the container's stop timeout is 30 s longer. */
  graceSeconds?: pulumi.Input<number>;
  /**
   * What stopping the container does to the guest (ON_STOP): `poweroff` (default) powers it off;
   * `suspend` saves its running state beside its disk and the next start resumes it in seconds
   * (processes, files and /dev/shm kept). The stop timeout (`graceSeconds` + 30 s) leaves room
   * for the save (a few seconds per GiB of guest memory).
   */
  onStop?: pulumi.Input<OnStop>;
  /**
   * Whether a new machine starts from the machine image's captured ready state (SNAPSHOT):
   * `auto` (default) restores it and reseals the copy as this machine (its own host keys,
   * machine-id, host name, users, keys and user data) when its size (2 vCPU, 2 GiB, 20 GiB),
   * accelerator (TCG), network (NAT) and hardware match the capture, which is ready in seconds
   * instead of a boot; anything else boots as usual. `off` always boots.
   */
  snapshot?: pulumi.Input<Snapshot>;
  /** How long `pulumi up` waits for the VM to be ready (SSH answers, cloud-init done), in seconds. Default 600: a guest without KVM needs minutes. */
  readyTimeoutSeconds?: pulumi.Input<number>;
  /** The address users reach the Docker host at, used in `sshHost`/`sshCommand`. Default 127.0.0.1 (the local Docker Engine). */
  sshHost?: pulumi.Input<string>;
}

/** The browser consoles of a machine (`consoles`). */
export interface ConsolesArgs {
  /** Host port to publish the console server on (at `sshHostIp`). Default: Docker picks a free one; `consoleUrl` names it. */
  port?: pulumi.Input<number>;
  /**
   * The token that opens the consoles (16-512 characters: letters, digits, `._~+/=:@!$&'()*-`).
   * A Pulumi secret; reaches the container as a file (`CONSOLE_TOKEN_FILE`). Default: a random
   * one per machine (`@pulumi/random`), kept in the stack's state.
   */
  token?: pulumi.Input<string>;
}

/** The arguments of a `DevMachine`. */
export interface DevMachineArgs extends MachineSettingsArgs {
  /** Docker container name. Default: the component's name. Must be unique on its Docker host. */
  containerName?: pulumi.Input<string>;
}

/** A Docker Engine a group places machines on. */
export interface DockerHostArgs {
  /** Short name used in placement (`MachineOverrideArgs.host`) and outputs. Default `host0`, `host1`, ... */
  name?: string;
  /** Docker daemon address: `unix:///var/run/docker.sock`, `ssh://user@build-1`, `tcp://10.0.0.5:2376`. */
  host: string;
  /** Extra ssh options for `ssh://` hosts, e.g. `["-o", "StrictHostKeyChecking=no"]`. */
  sshOpts?: string[];
  /** The address users reach this host at for SSH. Default: the host name from `host` (127.0.0.1 for unix sockets). */
  sshHost?: string;
}

/** One machine of a group: its name, where it runs, and what differs from the template. */
export interface MachineOverrideArgs extends MachineSettingsArgs {
  /** The machine's name inside the group; the container is named `<group>-<name>`. */
  name: string;
  /** Pin the machine to a host: its `name` from `hosts`, or its index as a string. Default: the placement rule (round robin). */
  host?: string;
}

/** The arguments of a `DevMachineGroup`. */
export interface DevMachineGroupArgs {
  /** Number of machines named `<group>-0`, `<group>-1`, ... when `machines` is not given. Default 1. */
  count?: number;
  /** Settings every machine starts from. */
  template?: MachineSettingsArgs;
  /** The machines, each with its name and overrides of the template. Takes precedence over `count`. */
  machines?: MachineOverrideArgs[];
  /** Docker Engines to spread the machines over. Machine i goes to host i mod N (round robin) unless it pins a host. Default: the provider of the component (the local engine). */
  hosts?: DockerHostArgs[];
  /** Create a private Docker network named `<group>` on every host the group uses, and join every machine to it. Default true. */
  privateNetwork?: boolean;
  /** Subnet of the private network, e.g. `10.77.0.0/24`. Default: Docker chooses. */
  subnet?: string;
}
