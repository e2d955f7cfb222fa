// Package langhost holds what our own language hosts (tools/pulumi/language-nodejs and
// language-python) share: the gRPC server the engine starts, the answers that are the same for
// every language, runtime options, and how a program's exit becomes the engine's RunResponse.
// Each host keeps only what its language does differently (how to run, install, generate).
package langhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// ExitAfterLoggedError is the exit code both SDKs' runners use for "the error was already
// reported to the engine": the update fails without a second, generic message.
const ExitAfterLoggedError = 32

// Base answers what is the same for every language. A host embeds it (by value).
type Base struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	// Engine is the engine's address: from the command line, or the handshake.
	Engine string
	// Version is what GetPluginInfo reports.
	Version string
}

func (b *Base) Handshake(_ context.Context, req *pulumirpc.LanguageHandshakeRequest) (*pulumirpc.LanguageHandshakeResponse, error) {
	if req.EngineAddress != "" {
		b.Engine = req.EngineAddress
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (b *Base) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: b.Version}, nil
}

// GetRequiredPlugins: none. Plugins are found on PATH, never downloaded.
func (b *Base) GetRequiredPlugins(context.Context, *pulumirpc.GetRequiredPluginsRequest) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

// GetRequiredPackages: none, as GetRequiredPlugins.
func (b *Base) GetRequiredPackages(context.Context, *pulumirpc.GetRequiredPackagesRequest) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

func (b *Base) GetProgramDependencies(context.Context, *pulumirpc.GetProgramDependenciesRequest) (*pulumirpc.GetProgramDependenciesResponse, error) {
	return &pulumirpc.GetProgramDependenciesResponse{}, nil
}

// Option reads a runtime option of Pulumi.yaml / PulumiPlugin.yaml as a string ("" if unset).
func Option(info *pulumirpc.ProgramInfo, name string) string {
	if info == nil || info.Options == nil {
		return ""
	}
	v, ok := info.Options.Fields[name]
	if !ok {
		return ""
	}
	switch k := v.Kind.(type) {
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_BoolValue:
		return strconv.FormatBool(k.BoolValue)
	}
	return ""
}

// ConfigEnv is the stack's config as both SDKs read it from the environment: PULUMI_CONFIG
// (a JSON object of key to value) and PULUMI_CONFIG_SECRET_KEYS (a JSON list of keys).
func ConfigEnv(req *pulumirpc.RunRequest) ([]string, error) {
	config, err := json.Marshal(req.Config)
	if err != nil {
		return nil, err
	}
	secretKeys, err := json.Marshal(append([]string{}, req.ConfigSecretKeys...))
	if err != nil {
		return nil, err
	}
	return []string{"PULUMI_CONFIG=" + string(config), "PULUMI_CONFIG_SECRET_KEYS=" + string(secretKeys)}, nil
}

// RunResult turns how the program's process ended into the engine's answer.
func RunResult(err error) *pulumirpc.RunResponse {
	if err == nil {
		return &pulumirpc.RunResponse{}
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if exit.ExitCode() == ExitAfterLoggedError {
			return &pulumirpc.RunResponse{Bail: true}
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exit.ExitCode())}
	}
	return &pulumirpc.RunResponse{Error: err.Error()}
}

// Streams gives a child process's stdout and stderr as writers that forward each chunk to the
// engine through send (one of stdout/stderr set), one message at a time.
func Streams(send func(stdout, stderr []byte) error) (io.Writer, io.Writer) {
	mu := &sync.Mutex{}
	return streamWriter{mu, send, false}, streamWriter{mu, send, true}
}

type streamWriter struct {
	mu     *sync.Mutex
	send   func(stdout, stderr []byte) error
	stderr bool
}

func (w streamWriter) Write(p []byte) (int, error) {
	b := append([]byte{}, p...)
	w.mu.Lock()
	defer w.mu.Unlock()
	var err error
	if w.stderr {
		err = w.send(nil, b)
	} else {
		err = w.send(b, nil)
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// Serve runs the host the way the engine starts one: `HOST [-flags...] <engine address>`; the
// engine reads the port from the host's first line of output.
func Serve(base *Base, server pulumirpc.LanguageRuntimeServer) {
	for _, a := range os.Args[1:] {
		if !strings.HasPrefix(a, "-") {
			base.Engine = a
		}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(400 * 1024 * 1024))
	pulumirpc.RegisterLanguageRuntimeServer(srv, server)
	fmt.Println(lis.Addr().(*net.TCPAddr).Port)
	if err := srv.Serve(lis); err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
