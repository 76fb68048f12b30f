//go:build kube

package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/client/config"

	"upkeep.dev/upkeep/installers/kube"
	"upkeep.dev/upkeep/installers/oci"
	"upkeep.dev/upkeep/reconcile/report"
	"upkeep.dev/upkeep/sources/versionclient"
)

func init() { extraCommands = append(extraCommands, newKubeUpdaterCmd) }

type kubeFlags struct {
	server, tokenFile, caFile       string
	report, leases                  bool
	namespace, kubeconfig           string
	publicKeys                      []string
	publicKeySecret                 string
	trustPolicy                     string
	registryConfig                  string
	allowLoopbackHTTP               bool
	leaderElect                     bool
	leaderNamespace, leaderID       string
	metricsAddr, probeAddr          string
	interval, poll, grace, deadline time.Duration
	updateDuration, verifyTTL       time.Duration
	unusableThreshold, concurrency  int
	qps                             float32
	burst                           int
	logFormat, logLevel             string
}

func newKubeUpdaterCmd() *cobra.Command {
	var f kubeFlags
	cmd := &cobra.Command{
		Use:   "kube-updater --server URL --public-key FILE [--namespace NS]",
		Short: "Keep Kubernetes workloads labelled upkeep.dev/managed=true at their channel's version, cosign-verified",
		Long: `kube-updater runs a controller that watches Deployments and StatefulSets
labelled upkeep.dev/managed: "true" (annotations: upkeep.dev/channel or
upkeep.dev/group, one required, a group alone meaning the group's channel;
upkeep.dev/container, upkeep.dev/image, upkeep.dev/schedule, upkeep.dev/agent,
upkeep.dev/update-duration, upkeep.dev/skip-reconcile).

For each one it reads the current version from the container's image tag, the
target and critical flag from the version server, the maintenance schedule from
the server (group) or the Teleport agent's Secret, and the health from the pods,
and decides with upkeep's decision chain. Before changing anything it resolves
<image>:<version> to a digest and verifies its cosign signature against the
public keys; it then writes repo:tag@sha256:<digest>, follows the rollout, and
restores the previous image (skipping the version) when the rollout is not
healthy within the deadline. Decisions are in the annotation
status.upkeep.dev/last-decision, in Events, in /metrics and in reports.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runKubeUpdater(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.server, "server", "", "the version server's base URL (https://, or http:// on loopback)")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the bearer token the server expects for reports")
	fl.StringVar(&f.caFile, "ca-file", "", "PEM bundle of the authorities that sign the server's certificate (default: the system's)")
	fl.BoolVar(&f.report, "report", true, "send a report of each decision to the server's /v1/reports (needs --token-file)")
	fl.BoolVar(&f.leases, "leases", true, "take a concurrency lease from the server's /v1/leases before each image change, so at most a group's maxConcurrent workloads update at once (needs --token-file; without one, images change without a lease)")
	fl.StringVar(&f.namespace, "namespace", "", "watch only this namespace (default: all namespaces)")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster, $KUBECONFIG or ~/.kube/config)")
	fl.StringArrayVar(&f.publicKeys, "public-key", nil, "PEM file of cosign public keys to trust (repeatable; one valid signature suffices)")
	fl.StringVar(&f.publicKeySecret, "public-key-secret", "", "NAMESPACE/NAME of a Secret whose PEM values are cosign public keys to trust")
	fl.StringVar(&f.trustPolicy, "trust-policy", "", `YAML file of named trust policies (keys, N-of-M thresholds, keyless identities checked against a trusted_root.json) and which channels use them; workloads may name one with upkeep.dev/trust-policy; --public-key keys form the policy "default"`)
	fl.StringVar(&f.registryConfig, "registry-config", "", "Docker config.json with registry credentials (default: anonymous)")
	fl.BoolVar(&f.allowLoopbackHTTP, "allow-loopback-http-registry", false, "allow plain HTTP to registries on loopback addresses (tests, node-local mirrors)")
	fl.BoolVar(&f.leaderElect, "leader-elect", true, "elect one active replica through a Lease")
	fl.StringVar(&f.leaderNamespace, "leader-election-namespace", "", "namespace of the Lease (default: the pod's namespace)")
	fl.StringVar(&f.leaderID, "leader-election-id", kube.DefaultLeaderElectionID, "name of the Lease")
	fl.StringVar(&f.metricsAddr, "metrics-bind-address", ":8080", `address of /metrics ("0" disables)`)
	fl.StringVar(&f.probeAddr, "health-probe-bind-address", ":8081", `address of /healthz and /readyz ("0" disables)`)
	fl.DurationVar(&f.interval, "interval", kube.DefaultInterval, "longest time a workload goes without a look")
	fl.DurationVar(&f.poll, "poll-interval", kube.DefaultPollInterval, "how often the server is asked about each channel and group in use")
	fl.DurationVar(&f.grace, "grace", kube.DefaultGrace, "how long a pod may be not Ready before its workload counts as unhealthy")
	fl.DurationVar(&f.deadline, "rollout-deadline", kube.DefaultRolloutDeadline, "how long a rollout may take before the previous image is restored")
	fl.DurationVar(&f.updateDuration, "update-duration", 0, "how long an update needs inside a window (default 15m; annotation upkeep.dev/update-duration overrides)")
	fl.DurationVar(&f.verifyTTL, "verify-cache-ttl", kube.DefaultVerifyCacheTTL, "how long a verification result is reused across workloads (negative: never)")
	fl.IntVar(&f.unusableThreshold, "unusable-threshold", 0, "consecutive checks without a usable schedule before updating at once (default 2)")
	fl.IntVar(&f.concurrency, "max-concurrent-reconciles", 4, "workloads of one kind handled at once")
	fl.Float32Var(&f.qps, "kube-api-qps", 20, "requests per second to the Kubernetes API (client-side limit)")
	fl.IntVar(&f.burst, "kube-api-burst", 30, "burst of requests to the Kubernetes API")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return cmd
}

func runKubeUpdater(cmd *cobra.Command, f kubeFlags) error {
	log, err := newLogger(f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	if f.server == "" {
		return usageError{fmt.Errorf("--server is required: the version server's base URL")}
	}
	if len(f.publicKeys) == 0 && f.publicKeySecret == "" && f.trustPolicy == "" {
		return usageError{fmt.Errorf("no public key: give --public-key FILE, --public-key-secret NAMESPACE/NAME or --trust-policy FILE; images are never deployed unverified")}
	}
	if f.report && f.tokenFile == "" {
		return usageError{fmt.Errorf("--report needs --token-file, the bearer token the server expects (or pass --report=false)")}
	}
	if f.leases && f.tokenFile == "" && cmd.Flags().Changed("leases") {
		return usageError{fmt.Errorf("--leases needs --token-file: the server's leases route takes the report token")}
	}
	server, err := versionclient.New(f.server, versionclient.Options{CAFile: f.caFile, Version: buildVersion()})
	if err != nil {
		return usageError{fmt.Errorf("--server: %w", err)}
	}
	restCfg, err := kubeConfig(f.kubeconfig)
	if err != nil {
		return err
	}
	restCfg.QPS, restCfg.Burst = f.qps, f.burst
	restCfg.UserAgent = "upkeep-kube-updater/" + buildVersion()

	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	keys, names, err := readPublicKeys(ctx, restCfg, f.publicKeys, f.publicKeySecret)
	if err != nil {
		return err
	}
	vopts := oci.Options{KeyNames: names, AllowLoopbackHTTP: f.allowLoopbackHTTP, Logger: log}
	if f.registryConfig != "" {
		data, err := os.ReadFile(f.registryConfig)
		if err != nil {
			return fmt.Errorf("--registry-config: %w", err)
		}
		if vopts.Keychain, err = oci.KeychainFromDockerConfig(data); err != nil {
			return fmt.Errorf("--registry-config %s: %w", f.registryConfig, err)
		}
	}
	var trust oci.Trust
	if f.trustPolicy != "" {
		if trust, err = oci.LoadTrust(f.trustPolicy); err != nil {
			return usageError{fmt.Errorf("--trust-policy: %w", err)}
		}
	}
	if len(keys) > 0 {
		if err := trust.AddKeys(oci.DefaultPolicy, keys, names); err != nil {
			return usageError{fmt.Errorf("--public-key: %w", err)}
		}
	}
	verifier, err := oci.New(trust, vopts)
	if err != nil {
		return fmt.Errorf("public keys and trust policies: %w", err)
	}

	mo := kube.ManagerOptions{
		Options: kube.Options{
			Interval: f.interval, PollInterval: f.poll, Grace: f.grace, RolloutDeadline: f.deadline,
			UpdateDuration: f.updateDuration, UnusableThreshold: f.unusableThreshold,
			VerifyCacheTTL: f.verifyTTL, UpdaterVersion: buildVersion(),
		},
		Namespace: f.namespace, Server: server, Verifier: ociVerifier{verifier}, Logger: log,
		MetricsBindAddress: f.metricsAddr, HealthProbeBindAddress: f.probeAddr,
		LeaderElection: f.leaderElect, LeaderElectionID: f.leaderID, LeaderElectionNamespace: f.leaderNamespace,
		MaxConcurrentReconciles: f.concurrency,
	}
	if f.tokenFile != "" && (f.report || f.leases) {
		rc, err := report.NewClient(f.server, report.ClientOptions{TokenFile: f.tokenFile, CAFile: f.caFile, UserAgent: "upkeep-kube-updater/" + buildVersion()})
		if err != nil {
			return usageError{fmt.Errorf("report: %w", err)}
		}
		if f.report {
			mo.Reporter = rc
		}
		if f.leases {
			mo.Leases = rc
		}
	}
	if mo.Leases == nil {
		log.Info("changing images without concurrency leases: the groups' maxConcurrent does not count these workloads", "why", "--leases=false, or no --token-file")
	}
	mgr, _, err := kube.NewManager(restCfg, mo)
	if err != nil {
		return err
	}
	ns := f.namespace
	if ns == "" {
		ns = "all namespaces"
	}
	log.Info("upkeep kube-updater started", "version", buildVersion(), "server", server.String(), "watching", ns,
		"keys", verifier.KeyIDs(), "policies", verifier.Policies(), "leaderElection", f.leaderElect)
	return mgr.Start(ctx)
}

func kubeConfig(path string) (*rest.Config, error) {
	if path != "" {
		c, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, usageError{fmt.Errorf("--kubeconfig %s: %w", path, err)}
		}
		return c, nil
	}
	c, err := ctrlconfig.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("no Kubernetes configuration (not in a pod, no $KUBECONFIG, no ~/.kube/config); pass --kubeconfig: %w", err)
	}
	return c, nil
}

// readPublicKeys reads the PEM key files and the PEM values of the key
// Secret, each labelled for error messages.
func readPublicKeys(ctx context.Context, cfg *rest.Config, files []string, secret string) (keys [][]byte, names []string, err error) {
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, usageError{fmt.Errorf("--public-key: %w", err)}
		}
		keys, names = append(keys, data), append(names, "file "+path)
	}
	if secret == "" {
		return keys, names, nil
	}
	ns, name, ok := strings.Cut(secret, "/")
	if !ok || ns == "" || name == "" {
		return nil, nil, usageError{fmt.Errorf("--public-key-secret %q: want NAMESPACE/NAME", secret)}
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var s corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &s); err != nil {
		return nil, nil, fmt.Errorf("--public-key-secret %s: %w", secret, err)
	}
	found := 0
	for k, v := range s.Data {
		if strings.Contains(string(v), "-----BEGIN") {
			keys, names = append(keys, v), append(names, fmt.Sprintf("secret %s key %s", secret, k))
			found++
		}
	}
	if found == 0 {
		return nil, nil, fmt.Errorf("--public-key-secret %s holds no PEM value; put each cosign.pub under a key of the Secret", secret)
	}
	return keys, names, nil
}

// ociVerifier adapts installers/oci to the updater's ImageVerifier. Its
// errors carry their reason (ImageUnsigned, SignatureMismatch, ...).
type ociVerifier struct{ v *oci.Verifier }

func (a ociVerifier) Verify(ctx context.Context, image string) (kube.Verified, error) {
	return a.VerifyScoped(ctx, image, kube.TrustScope{})
}

// VerifyScoped verifies under the policy the workload's scope selects.
func (a ociVerifier) VerifyScoped(ctx context.Context, image string, s kube.TrustScope) (kube.Verified, error) {
	r, err := a.v.VerifyIn(ctx, image, oci.Scope{Policy: s.Policy, Channel: s.Channel})
	if err != nil {
		return kube.Verified{}, err
	}
	return kube.Verified{Ref: r.Ref, Digest: r.Digest, KeyID: r.Signer()}, nil
}
