"""One DevMachine from Python, through the SDK `pulumi package add ../../provider` generates.

Settings (defaults in brackets): sshKey (required), name [workstation], cpu [2], memory [2G],
storage [20G], sshPort [2222], accel [auto: KVM when it works, else TCG], image [the DevMachines image].
"""
import pulumi
import pulumi_devmachines as devmachines

config = pulumi.Config()

box = devmachines.DevMachine(
    config.get("name") or "workstation",
    cpu=config.get_float("cpu") or 2,
    memory=config.get("memory") or "2G",
    storage=config.get("storage") or "20G",
    user="dev",
    ssh_keys=[config.require("sshKey")],
    ssh_port=config.get_float("sshPort") or 2222,
    accel=config.get("accel"),
    image=config.get("image"),
    user_data="runcmd:\n  - [sh, -c, 'echo ready > /etc/motd']\n",
)

pulumi.export("sshCommand", box.ssh_command)
pulumi.export("containerName", box.container_name)
pulumi.export("diskVolume", box.volume_name)
