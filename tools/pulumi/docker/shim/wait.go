package shim

// Our own lines around the upstream docker_container create (upstream code untouched): with
// `wait`, upstream polls the health status until `wait_timeout` and then fails with a bare
// "container failed to be in healthy state", even when the container's process died at once
// (a DevMachine launcher that exits 2 or 3 is restarted by its restart policy, forever). This
// watches the container while upstream waits, gives up as soon as waiting is pointless (the
// same rules as sdk/src/run.ts hopelessState), and puts the container's own last log lines
// (stderr: the DevMachines launcher's log) into the error that `pulumi up` prints.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/hashicorp/terraform-plugin-sdk/v2/diag"
	"github.com/hashicorp/terraform-plugin-sdk/v2/helper/schema"
	"github.com/terraform-providers/terraform-provider-docker/internal/provider"
)

// How the launcher's `--health` output begins once READY_TIMEOUT has passed (runtime/src/main.ts).
const notReadyPrefix = "the guest is not ready after READY_TIMEOUT"

// How many of the container's last log lines the error carries.
const logTail = "25"

func wrapContainerCreate(create schema.CreateContextFunc) schema.CreateContextFunc {
	return func(ctx context.Context, d *schema.ResourceData, meta interface{}) diag.Diagnostics {
		config, ok := meta.(*provider.ProviderConfig)
		if !ok || !d.Get("wait").(bool) || !d.Get("start").(bool) {
			return create(ctx, d, meta)
		}
		docker, err := config.MakeClient(ctx, d)
		if err != nil {
			return create(ctx, d, meta)
		}
		name := d.Get("name").(string)
		createCtx, cancelCreate := context.WithCancel(ctx)
		defer cancelCreate()
		reasons := make(chan string, 1)
		go func() {
			if reason := watch(createCtx, docker, name); reason != "" {
				reasons <- reason // before the cancel, so it is there when create returns
				cancelCreate()
			}
		}()
		started := time.Now()
		diags := create(createCtx, d, meta)
		if !diags.HasError() {
			return diags
		}
		var reason string
		select {
		case reason = <-reasons:
		default:
			if !strings.Contains(summaries(diags), "healthy state") {
				return diags // failed before the wait (image, ports, ...): upstream's error says it
			}
			reason = fmt.Sprintf("was not healthy after %d s (wait_timeout)", int(time.Since(started).Seconds()))
		}
		return diag.FromErr(errors.New(describe(ctx, docker, name, reason)))
	}
}

// watch polls the container until waiting for `healthy` is pointless (returns why) or ctx ends.
func watch(ctx context.Context, docker *client.Client, name string) string {
	restartsAtStart := -1
	for {
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(2 * time.Second):
		}
		info, err := docker.ContainerInspect(ctx, name)
		if err != nil || info.ContainerJSONBase == nil || info.State == nil {
			continue // not created yet
		}
		if restartsAtStart < 0 {
			restartsAtStart = info.RestartCount
		}
		if reason := hopeless(info.State, info.RestartCount, restartsAtStart); reason != "" {
			return reason
		}
	}
}

// hopeless says why the container will not become healthy now, or "" while it still may.
func hopeless(state *container.State, restarts, restartsAtStart int) string {
	exit := fmt.Sprintf("exit code %d", state.ExitCode)
	switch {
	case state.Health != nil && state.Health.Status == container.Healthy:
		return ""
	case state.Status == container.StateExited || state.Status == container.StateDead:
		return fmt.Sprintf("stopped (%s) before it was healthy", exit)
	case state.Restarting || state.Status == container.StateRestarting:
		return fmt.Sprintf("is crash-looping: its process exited (%s) and Docker is restarting it (%d restart(s) so far)", exit, restarts)
	case restarts > restartsAtStart:
		// Running again: Docker has reset the exit code, the log below says why it ended.
		return fmt.Sprintf("is crash-looping: its process exited and Docker restarted it %d time(s)", restarts)
	}
	if state.Health == nil || len(state.Health.Log) == 0 {
		return ""
	}
	last := strings.TrimSpace(state.Health.Log[len(state.Health.Log)-1].Output)
	if state.Health.Status == container.Unhealthy {
		return "is unhealthy: " + last
	}
	// Final even while Docker's start period keeps the status "starting".
	if strings.HasPrefix(last, notReadyPrefix) {
		return "never became ready: " + last
	}
	return ""
}

// describe is the error: what happened and the container's last log lines (its stderr, the
// launcher's log, first; then stdout, the guest's serial console).
func describe(ctx context.Context, docker *client.Client, name, reason string) string {
	message := fmt.Sprintf("container %s %s", name, reason)
	logsCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	reader, err := docker.ContainerLogs(logsCtx, name, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: logTail})
	if err != nil {
		return fmt.Sprintf("%s (its logs could not be read: %v)", message, err)
	}
	defer reader.Close() //nolint:errcheck
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, io.LimitReader(reader, 1<<20)); err != nil {
		return fmt.Sprintf("%s (its logs could not be read: %v)", message, err)
	}
	return fmt.Sprintf("%s; its last log lines:\n--- stderr (the launcher) ---\n%s\n--- stdout (the console) ---\n%s",
		message, strings.TrimRight(stderr.String(), "\n"), strings.TrimRight(stdout.String(), "\n"))
}

func summaries(diags diag.Diagnostics) string {
	var all []string
	for _, d := range diags {
		all = append(all, d.Summary, d.Detail)
	}
	return strings.Join(all, "\n")
}
