package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/warden-mcp/warden"
	"github.com/warden-mcp/warden/internal/kubetest"
	"github.com/warden-mcp/warden/mask"
	"github.com/warden-mcp/warden/policy"
	"github.com/warden-mcp/warden/recorder/sqlite"
	corev1 "k8s.io/api/core/v1"
	kresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const benchPods = 500

var (
	benchOnce sync.Once
	benchErr  error
)

// benchNamespace holds 500 pods shaped like real ones: labels, two
// containers with environment, resources, probes.
func benchNamespace(b *testing.B, c *kubetest.Cluster) string {
	const ns = "bench-500"
	benchOnce.Do(func() {
		ctx := context.Background()
		admin, err := kubernetes.NewForConfig(c.AdminConfig())
		if err != nil {
			benchErr = err
			return
		}
		if _, benchErr = admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); benchErr != nil {
			return
		}
		for i := range benchPods {
			container := func(name string) corev1.Container {
				return corev1.Container{Name: name, Image: "registry.example.com/shop/" + name + ":1.42.0",
					Env:   []corev1.EnvVar{{Name: "MODE", Value: "production"}, {Name: "REGION", Value: "eu-west-1"}, {Name: "LOG_LEVEL", Value: "info"}},
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: kresource.MustParse("100m"), corev1.ResourceMemory: kresource.MustParse("128Mi")},
						Limits: corev1.ResourceList{corev1.ResourceMemory: kresource.MustParse("256Mi")}},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr8080}}, PeriodSeconds: 10}}
			}
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("shop-%04d", i), Labels: map[string]string{"app": "shop", "tier": "web", "pod-template-hash": "7c9f8d6b5"},
					Annotations: map[string]string{"prometheus.io/scrape": "true"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{container("web"), container("sidecar")}},
			}
			if _, benchErr = admin.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); benchErr != nil {
				return
			}
		}
	})
	if benchErr != nil {
		b.Fatalf("seeding %d pods: %v", benchPods, benchErr)
	}
	return ns
}

// BenchmarkList500Pods lists 500 pods through kube_get and, as baselines
// in the same process against the same API server, with client-go
// directly. docs/BENCHMARKS.md records the results.
func BenchmarkList500Pods(b *testing.B) {
	c := kubetest.Shared(b)
	ns := benchNamespace(b, c)
	ctx := context.Background()
	cfg := c.Config(kubetest.Admin)

	b.Run("client-go-typed", func(b *testing.B) {
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			b.Fatal(err)
		}
		measure(b, func() int {
			l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				b.Fatal(err)
			}
			return len(l.Items)
		})
	})
	b.Run("client-go-typed-json", func(b *testing.B) {
		jc := rest.CopyConfig(cfg)
		jc.ContentType, jc.AcceptContentTypes = "application/json", "application/json"
		cs, err := kubernetes.NewForConfig(jc)
		if err != nil {
			b.Fatal(err)
		}
		measure(b, func() int {
			l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				b.Fatal(err)
			}
			return len(l.Items)
		})
	})
	b.Run("client-go-dynamic", func(b *testing.B) {
		dc, err := dynamic.NewForConfig(cfg)
		if err != nil {
			b.Fatal(err)
		}
		gvr := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
		measure(b, func() int {
			l, err := dc.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				b.Fatal(err)
			}
			return len(l.Items)
		})
	})

	kc := Config{Server: c.Server, TokenFile: c.TokenFile(kubetest.Admin), CAFile: c.CAFile}
	if err := kc.Validate(); err != nil {
		b.Fatal(err)
	}
	backend, err := NewBackend("cluster", kc)
	if err != nil {
		b.Fatal(err)
	}
	defer backend.Close()
	pol, err := policy.New(policy.Config{"ops": {Members: policy.Members{Groups: []string{"ops"}},
		Grants: []*policy.Grant{{Backend: "cluster", Namespaces: []string{ns}, Resources: []string{"pods"}}}}}, map[string]string{"cluster": "kubernetes"})
	if err != nil {
		b.Fatal(err)
	}
	tool := &Get{Backends: Backends{"cluster": backend}, Grants: pol}
	callCtx := warden.WithCaller(ctx, &warden.Caller{Subject: "bench", Groups: []string{"ops"}, Method: "local"})
	args := json.RawMessage(`{"cluster":"cluster","resource":"pods","namespace":"` + ns + `"}`)

	b.Run("kube_get-tool", func(b *testing.B) {
		// Plan (resolve, check), authorize, Execute: the result's JSON,
		// which Execute writes for lists.
		measure(b, func() int {
			a, err := tool.Plan(callCtx, args)
			if err != nil {
				b.Fatal(err)
			}
			if d := pol.Authorize(warden.CallerFrom(callCtx), a); d.Effect != warden.Allow {
				b.Fatal(d.Reasons)
			}
			res, err := tool.Execute(callCtx, a)
			if err != nil {
				b.Fatal(err)
			}
			if res.JSON == nil { // a get; lists come encoded
				if res.JSON, err = json.Marshal(res.Structured); err != nil {
					b.Fatal(err)
				}
			}
			return int(res.Count)
		})
	})
	b.Run("kube_get-pipeline", func(b *testing.B) {
		store, err := sqlite.Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "bench.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer store.Close()
		det, err := mask.NewDetectors(mask.Config{Detectors: []string{"credit_card", "email", "us_ssn", "iban", "secret_token"}})
		if err != nil {
			b.Fatal(err)
		}
		// Wired as cmd/warden wires it: the tool runs the detectors per
		// object, so max_response_bytes counts masked objects.
		reg, err := warden.NewRegistry(&Get{Backends: tool.Backends, Grants: pol, Scrubber: det})
		if err != nil {
			b.Fatal(err)
		}
		seq := 0
		p := &warden.Pipeline{Tools: reg, Policy: pol, Recorder: store, Scrubber: det, Clock: time.Now,
			NewID: func() string { seq++; return fmt.Sprintf("c-bench-%d-%d", time.Now().UnixNano(), seq) }}
		measure(b, func() int {
			call, err := p.Run(callCtx, "kube_get", args)
			if err != nil {
				b.Fatal(err)
			}
			return int(call.Result.Count)
		})
	})
}

var intstr8080 = intstr.FromInt32(8080)

// measure runs fn b.N times (after one warm-up) and reports the p50.
func measure(b *testing.B, fn func() int) {
	if n := fn(); n != benchPods {
		b.Fatalf("listed %d pods; want %d", n, benchPods)
	}
	d := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		fn()
		d = append(d, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-µs")
}
