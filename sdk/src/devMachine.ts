import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import type { DevMachineArgs } from "./args.js";
import { containerArgs, volumeArgs } from "./container.js";
import type { ContainerSpec, SpecContext } from "./description.js";
import { machineSpec } from "./machineSpec.js";
import { holdsSecrets, secretIf } from "./secrets.js";

/** Resource options of a `DevMachine`: Pulumi's, plus where a group placed it. */
export interface DevMachineOptions extends pulumi.ComponentResourceOptions {
  /** Set by `DevMachineGroup`: recorded in the container's labels. */
  placement?: SpecContext;
  /**
   * Set by `DevMachineGroup`, which builds (and so checks) every machine's description before
   * it creates anything: `machineSpec` of these very arguments and `placement`, so that it is
   * built once.
   */
  spec?: pulumi.Output<ContainerSpec>;
  /** Set by `DevMachineGroup`: what the container waits for (the group's network, which the description names). */
  containerDependsOn?: pulumi.Resource[];
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
  /** With `consoles`: the console server's address with its token (`http://HOST:PORT/?token=...`), a secret. Empty otherwise. */
  public readonly consoleUrl: pulumi.Output<string>;

  constructor(name: string, args: DevMachineArgs, opts?: DevMachineOptions) {
    const { placement, spec: built, containerDependsOn = [], ...options } = opts ?? {};
    super("devmachines:index:DevMachine", name, {}, options);
    args = args ?? {};
    // Plain arguments are checked now, so a bad value fails at once with the runtime's message.
    let spec = built ?? machineSpec(name, args, placement);
    // A console without a token of its own gets a random one per machine, kept (secret) in the
    // stack's state; the description is built again with it (the first build checked the rest).
    if (args.consoles && args.consoles.token === undefined) {
      const token = new random.RandomPassword(`${name}-console-token`, { length: 32, special: false }, { parent: this });
      args = { ...args, consoles: { ...args.consoles, token: token.result } };
      spec = machineSpec(name, args, placement);
    }

    const volume =
      args.persistent === false
        ? undefined
        : new docker.Volume(`${name}-disk`, volumeArgs(spec), { parent: this, retainOnDelete: args.keepDisk ?? false });
    const container = new docker.Container(`${name}-container`, containerArgs(spec), {
      parent: this,
      dependsOn: [...(volume ? [volume] : []), ...containerDependsOn],
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
    const consoleToken = args.consoles ? pulumi.output(args.consoles.token) : undefined;
    this.consoleUrl = pulumi.secret(
      pulumi.all([spec, container.ports, this.sshHost, consoleToken]).apply(([s, ports, host, token]) => {
        const console = s.access.console;
        if (!console || token === undefined) return "";
        const published = ports?.find((port) => port.internal === console.containerPort)?.external ?? console.hostPort;
        return `http://${host.includes(":") ? `[${host}]` : host}:${published}/?token=${encodeURIComponent(token)}`;
      }),
    );

    this.registerOutputs({
      containerId: this.containerId,
      containerName: this.containerName,
      ipAddress: this.ipAddress,
      sshHost: this.sshHost,
      sshPort: this.sshPort,
      sshUser: this.sshUser,
      sshCommand: this.sshCommand,
      volumeName: this.volumeName,
      consoleUrl: this.consoleUrl,
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
