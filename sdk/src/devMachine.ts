import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { DevMachineArgs } from "./args.js";
import { containerArgs, volumeArgs } from "./container.js";
import { containerSpec, type ContainerSpec, type SpecContext } from "./spec.js";

/** Resource options of a `DevMachine`: Pulumi's, plus where a group placed it. */
export interface DevMachineOptions extends pulumi.ComponentResourceOptions {
  /** Set by `DevMachineGroup`: recorded in the container's labels. */
  placement?: SpecContext;
}

/** What a TypeScript program can reach beyond the outputs (kept off the class fields so the plugin's schema stays plain). */
interface Internals {
  spec: pulumi.Output<ContainerSpec>;
  container: docker.Container;
  volume?: docker.Volume;
}
const internals = new WeakMap<DevMachine, Internals>();

/**
 * A full QEMU virtual machine running in a Docker container (`devmachines/debian:13` by default).
 *
 * Creates a `docker.Container` (devices /dev/kvm and /dev/net/tun, capability NET_ADMIN only,
 * the image's health check with `wait`, so `pulumi up` returns once SSH answers and cloud-init
 * is done) and, when persistent, a `docker.Volume` for the VM's disk. Choose the Docker host
 * with the `provider` (or `providers`) resource option.
 */
export class DevMachine extends pulumi.ComponentResource {
  /** Docker container id. */
  public readonly containerId: pulumi.Output<string>;
  /** Docker container name. */
  public readonly containerName: pulumi.Output<string>;
  /** The container's IP address on its (first) Docker network; in BRIDGE mode this is the VM's address. */
  public readonly ipAddress: pulumi.Output<string>;
  /** Where to SSH to: the Docker host's address (NAT) or the VM's own address (BRIDGE). */
  public readonly sshHost: pulumi.Output<string>;
  /** The SSH port at `sshHost`: the published host port (NAT) or 22 (BRIDGE). */
  public readonly sshPort: pulumi.Output<number>;
  /** The user to log in as. */
  public readonly sshUser: pulumi.Output<string>;
  /** A ready-to-paste SSH command. */
  public readonly sshCommand: pulumi.Output<string>;
  /** The Docker volume holding the VM's disk; empty when not persistent. */
  public readonly volumeName: pulumi.Output<string>;

  constructor(name: string, args: DevMachineArgs, opts?: DevMachineOptions) {
    super("devmachines:index:DevMachine", name, {}, opts);
    const placement = opts?.placement ?? {};
    args = args ?? {};

    // Plain arguments are checked now, so a bad value fails at once with the runtime's message;
    // arguments that are outputs are checked when they resolve (still during preview when known).
    if (isPlain(args)) containerSpec(name, args as pulumi.Unwrap<DevMachineArgs>, placement);
    // The description is built from unsecreted settings, so that what holds no secret stays
    // readable; which settings were secret is remembered first, and what they flow into is
    // marked secret again (containerArgs, the outputs, the `spec` getter).
    const secretSettings = secretArguments(args);
    const settings = pulumi.unsecret(pulumi.output(args)) as pulumi.Output<pulumi.Unwrap<DevMachineArgs>>;
    const spec = pulumi
      .all([settings, secretSettings])
      .apply(([s, secrets]) => containerSpec(name, s, { ...placement, secretSettings: secrets }));

    const volume =
      args.persistent === false
        ? undefined
        : new docker.Volume(`${name}-disk`, volumeArgs(spec), { parent: this, retainOnDelete: args.keepDisk ?? false });
    const container = new docker.Container(`${name}-container`, containerArgs(spec), {
      parent: this,
      dependsOn: volume ? [volume] : [],
      // The name is fixed, so a replacement must remove the old container first.
      deleteBeforeReplace: true,
    });
    internals.set(this, { spec: spec.apply((s) => secretIf(s, holdsSecrets(s))), container, ...(volume && { volume }) });

    this.containerId = container.id;
    this.containerName = container.name;
    this.ipAddress = pulumi
      .all([container.networkDatas, spec])
      .apply(([datas, s]) => (datas?.find((d) => d.networkName === s.networks[0]?.name) ?? datas?.[0])?.ipAddress ?? "");
    // Secret only when a secret setting flows into them (a password never does).
    this.sshHost = pulumi.all([spec, this.ipAddress]).apply(([s, ip]) => secretIf(s.access.sshHost ?? ip, s.secrets.other));
    this.sshPort = pulumi.all([spec, container.ports]).apply(([s, ports]) => {
      if (s.access.network === "BRIDGE") return 22;
      const published = ports?.find((port) => port.internal === 22 && (port.protocol ?? "tcp") === "tcp");
      return published?.external ?? s.access.sshPort ?? 0;
    });
    this.sshUser = spec.apply((s) => secretIf(s.access.user, s.secrets.other));
    this.sshCommand = pulumi.interpolate`ssh -p ${this.sshPort} ${this.sshUser}@${this.sshHost}`;
    this.volumeName = volume ? volume.name : pulumi.output("");

    this.registerOutputs({
      containerId: this.containerId,
      containerName: this.containerName,
      ipAddress: this.ipAddress,
      sshHost: this.sshHost,
      sshPort: this.sshPort,
      sshUser: this.sshUser,
      sshCommand: this.sshCommand,
      volumeName: this.volumeName,
    });
  }

  /**
   * The plain container description this machine deploys (what `runContainerSpec` runs without
   * Pulumi). A Pulumi secret when it holds one: a password or hash, or a setting that was secret.
   */
  get spec(): pulumi.Output<ContainerSpec> {
    return internals.get(this)!.spec;
  }

  /** The Docker container resource. */
  get container(): docker.Container {
    return internals.get(this)!.container;
  }

  /** The disk volume resource, when persistent. */
  get volume(): docker.Volume | undefined {
    return internals.get(this)!.volume;
  }
}

function secretIf<T>(value: T, secret: boolean): pulumi.Output<T> {
  return (secret ? pulumi.secret(value) : pulumi.output(value)) as pulumi.Output<T>;
}

/** The description holds a secret: a secret file, or a secret setting in the environment or elsewhere. */
function holdsSecrets(spec: ContainerSpec): boolean {
  return spec.secrets.env || spec.secrets.other || spec.files.some((file) => file.secret);
}

/** The names of the arguments that hold a Pulumi secret anywhere inside them (also nested, e.g. `users[0].password`). */
export function secretArguments(args: object): pulumi.Output<string[]> {
  const checks = Object.entries(args).map(async ([key, value]) => ((await pulumi.isSecret(pulumi.output(value))) ? [key] : []));
  return pulumi.output(Promise.all(checks).then((keys) => keys.flat()));
}

/** True when a value holds no outputs or promises anywhere, so it can be validated right away. */
export function isPlain(value: unknown): boolean {
  if (value === null || typeof value !== "object") return true;
  if (pulumi.Output.isInstance(value) || value instanceof Promise || pulumi.Resource.isInstance(value)) return false;
  return Object.values(value as Record<string, unknown>).every(isPlain);
}
