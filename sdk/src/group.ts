import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { DevMachineGroupArgs } from "./args.js";
import { LABEL_PREFIX } from "./defaults.js";
import { DevMachine } from "./devMachine.js";
import { ansibleInventory, sshConfig, type MachineInfo } from "./inventory.js";
import { machineSpec } from "./machineSpec.js";
import { groupMachine, hostNames, placeMachines } from "./placement.js";

/** Resource options of a `DevMachineGroup`: Pulumi's, plus existing Docker providers (TypeScript only). */
export interface DevMachineGroupOptions extends pulumi.ComponentResourceOptions {
  /**
   * Existing Docker providers to spread the machines over, instead of `hosts` (one per host,
   * round robin in this order). Users reach them at 127.0.0.1 unless `sshHost` says otherwise.
   */
  dockerProviders?: docker.Provider[];
}

const groupMachines = new WeakMap<DevMachineGroup, Record<string, DevMachine>>();

/**
 * N DevMachines from one template, with per-machine overrides, a private Docker network,
 * spread over several Docker hosts: machine i goes to host i mod N (round robin) unless it
 * pins a host. Outputs the machines, an `ssh_config` snippet and an Ansible inventory.
 *
 * A private network is per Docker host (Docker bridge networks do not span engines): machines
 * on the same host reach each other by name; across hosts, use `sshHost`/`sshPort`.
 */
export class DevMachineGroup extends pulumi.ComponentResource {
  /** The machines by name: where each runs and how to reach it. */
  public readonly machines: pulumi.Output<Record<string, MachineInfo>>;
  /** An OpenSSH `ssh_config` snippet with one `Host <group>-<name>` entry per machine. */
  public readonly sshConfig: pulumi.Output<string>;
  /** An Ansible YAML inventory: a group named after this component, one child group per Docker host. */
  public readonly ansibleInventory: pulumi.Output<string>;
  /** With `consoles`: each machine's console address with its own token, by machine name (a secret). */
  public readonly consoleUrls: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: DevMachineGroupArgs, opts?: DevMachineGroupOptions) {
    const { dockerProviders, ...options } = opts ?? {};
    super("devmachines:index:DevMachineGroup", name, {}, options);
    args = args ?? {};

    const hosts = hostNames(args.hosts, dockerProviders?.length ?? 0);
    const placed = placeMachines(name, args, hosts);
    // Every machine's description is built, and so checked, before anything is created. The
    // private network is named after the group, so the descriptions name it as a plain string
    // and the containers wait for it explicitly (containerDependsOn below).
    const described = placed.map((machine) => {
      const { settings, context } = groupMachine(name, args, machine);
      return { machine, settings, context, spec: machineSpec(machine.fullName, settings, context) };
    });

    const providers: (docker.Provider | undefined)[] = args.hosts?.length
      ? args.hosts.map(
          (host, index) =>
            new docker.Provider(`${name}-${hosts[index]}`, { host: host.host, ...(host.sshOpts && { sshOpts: host.sshOpts }) }, { parent: this }),
        )
      : dockerProviders?.length
        ? dockerProviders
        : [undefined];

    const networks = new Map<number, docker.Network>();
    if (args.privateNetwork ?? true) {
      for (const hostIndex of new Set(placed.map((machine) => machine.hostIndex))) {
        const provider = providers[hostIndex];
        networks.set(
          hostIndex,
          new docker.Network(
            `${name}-net-${hosts[hostIndex]}`,
            {
              name,
              driver: "bridge",
              labels: [{ label: `${LABEL_PREFIX}.group`, value: name }],
              ...(args.subnet && { ipamConfigs: [{ subnet: args.subnet }] }),
            },
            { parent: this, ...(provider && { provider }) },
          ),
        );
      }
    }

    const machines: Record<string, DevMachine> = {};
    for (const { machine, settings, context, spec } of described) {
      const provider = providers[machine.hostIndex];
      const network = networks.get(machine.hostIndex);
      machines[machine.name] = new DevMachine(machine.fullName, settings, {
        parent: this,
        ...(provider && { provider }),
        placement: context,
        spec,
        ...(network && { containerDependsOn: [network] }),
      });
    }
    groupMachines.set(this, machines);

    this.machines = pulumi.all(
      Object.fromEntries(
        placed.map((machine) => {
          const dm = machines[machine.name]!;
          return [
            machine.name,
            pulumi.all([dm.containerName, dm.containerId, dm.ipAddress, dm.sshHost, dm.sshPort, dm.sshUser, dm.sshCommand]).apply(
              ([containerName, containerId, ipAddress, sshHost, sshPort, sshUser, sshCommand]): MachineInfo => ({
                name: machine.name,
                containerName,
                containerId,
                host: machine.hostName,
                ipAddress,
                sshHost,
                sshPort,
                sshUser,
                sshCommand,
              }),
            ),
          ];
        }),
      ),
    ) as pulumi.Output<Record<string, MachineInfo>>;
    this.sshConfig = this.machines.apply((all) => sshConfig(Object.values(all)));
    this.ansibleInventory = this.machines.apply((all) => ansibleInventory(name, Object.values(all)));

    // Each machine has its own token (DevMachine generates one per machine): one address each.
    this.consoleUrls = pulumi.secret(
      pulumi
        .all(placed.map((machine) => machines[machine.name]!.consoleUrl.apply((url) => [machine.name, url] as const)))
        .apply((pairs) => Object.fromEntries(pairs.filter(([, url]) => url !== ""))),
    );

    this.registerOutputs({ machines: this.machines, sshConfig: this.sshConfig, ansibleInventory: this.ansibleInventory, consoleUrls: this.consoleUrls });
  }

  /** The DevMachine components by name (TypeScript). */
  get devMachines(): Record<string, DevMachine> {
    return groupMachines.get(this)!;
  }
}
