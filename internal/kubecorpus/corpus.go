// Package kubecorpus plants secrets in every place a Kubernetes object can carry one, with harmless values beside them, and judges whether a text reveals any of them, raw or encoded.
package kubecorpus

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// Secret is the value planted at place: unique, and matching no detector
// on its own (only its place says it is secret).
func Secret(place string) string { return "pl4nted-" + place + "-Qx7vZ2" }

// Places are where secrets are planted, by what reads them back
// (resource, name in the corpus namespace).
var Places = map[string][2]string{
	"podEnv":             {"pods", "app"},
	"podInitEnv":         {"pods", "app"},
	"podEphemeralEnv":    {"pods", "app"},
	"podArgEquals":       {"pods", "app"},
	"podArgNext":         {"pods", "app"},
	"podShellMysql":      {"pods", "app"},
	"podProbeExec":       {"pods", "app"},
	"podHookCurl":        {"pods", "app"},
	"podProbeHeader":     {"pods", "app"},
	"podJavaProp":        {"pods", "app"},
	"podAnnotation":      {"pods", "app"},
	"podInitArgs":        {"pods", "app"},
	"podAnnotationB64":   {"pods", "app"},
	"crB64Text":          {"vaults.corpus.example.com", "app"},
	"svcAnnotationJSON":  {"services", "app"},
	"crStatusWords":      {"vaults.corpus.example.com", "app"},
	"deployEnv":          {"deployments.apps", "app"},
	"deployKapp":         {"deployments.apps", "app"},
	"deployTplAnnot":     {"deployments.apps", "app"},
	"podCSIAttribute":    {"pods", "app"},
	"statefulEnv":        {"statefulsets.apps", "app"},
	"daemonEnv":          {"daemonsets.apps", "app"},
	"replicaEnv":         {"replicasets.apps", "app"},
	"jobArgs":            {"jobs.batch", "app"},
	"cronEnv":            {"cronjobs.batch", "app"},
	"rcEnv":              {"replicationcontrollers", "app"},
	"podTemplateEnv":     {"podtemplates", "app"},
	"cmKey":              {"configmaps", "app"},
	"cmProperties":       {"configmaps", "app"},
	"cmJSON":             {"configmaps", "app"},
	"cmDotenv":           {"configmaps", "app"},
	"cmKubeconfig":       {"configmaps", "app"},
	"cmKubeconfigKey":    {"configmaps", "app"},
	"cmManifest":         {"configmaps", "app"},
	"cmBinaryGzip":       {"configmaps", "app"},
	"cmBinaryKubeconfig": {"configmaps", "app"},
	"cmCopiedSecret":     {"configmaps", "app"},
	"cmVelaEnv":          {"configmaps", "app"},
	"cmRancherSecret":    {"configmaps", "app"},
	"cmYAMLSecret":       {"configmaps", "app"},
	"helmConfig":         {"configmaps", "sh.helm.release.v1.app.v1"},
	"helmManifest":       {"configmaps", "sh.helm.release.v1.app.v1"},
	"secretData":         {"secrets", "app"},
	"secretAnnotated":    {"secrets", "app"},
	"eventMessage":       {"events", "app.1"},
	"crKey":              {"vaults.corpus.example.com", "app"},
	"crNested":           {"vaults.corpus.example.com", "app"},
	"crEnv":              {"vaults.corpus.example.com", "app"},
	"crYAMLString":       {"vaults.corpus.example.com", "app"},
}

// Harmless are values that must stay visible where they were put.
var Harmless = []string{"LOG_LEVEL", "debug", "--port=8080", "nginx:1.27", "platform-team", "log_level", "db.internal",
	"--verbose", "8443", "blue", "widget-operator", "web-0"}

func env(place string) corev1.EnvVar {
	return corev1.EnvVar{Name: "DB_PASSWORD", Value: Secret(place)}
}

var harmlessEnv = []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "debug"}, {Name: "DB_HOST", Value: "db.internal"}, {Name: "MONKEY", Value: "blue"}}

func container(name string, e ...corev1.EnvVar) corev1.Container {
	return corev1.Container{Name: name, Image: "nginx:1.27", Env: append(e, harmlessEnv...), Args: []string{"--port=8080", "--verbose"}}
}

func podSpec(place string) corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{container("app", env(place))}}
}

func template(place string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "app"}}, Spec: podSpec(place)}
}

func gz(s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write([]byte(s))
	_ = zw.Close()
	return b.Bytes()
}

func kubeconfig(token, key string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster: {server: "https://prod.example.com:8443"}
users:
- name: admin
  user:
    token: %s
    client-key-data: %s
contexts:
- name: prod
  context: {cluster: prod, user: admin}
current-context: prod
`, token, base64.StdEncoding.EncodeToString([]byte(key)))
}

// Plant creates the corpus in namespace ns (and a CRD, vaults.corpus.example.com,
// if it is not there). admin must be allowed everything.
func Plant(ctx context.Context, admin *kubernetes.Clientset, ns string) error {
	one := int32(1)
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "app"}}
	om := metav1.ObjectMeta{Name: "app", Labels: map[string]string{"app": "app"}}
	podMeta := om
	podMeta.Annotations = map[string]string{"example.com/db-password": Secret("podAnnotation"), "example.com/owner": "platform-team",
		"example.com/env-file": base64.StdEncoding.EncodeToString([]byte("LOG_LEVEL=debug\nAPI_TOKEN=" + Secret("podAnnotationB64") + "\n"))}
	pod := &corev1.Pod{ObjectMeta: podMeta, Spec: corev1.PodSpec{
		Volumes: []corev1.Volume{{Name: "vault", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "secrets.example.com",
			VolumeAttributes: map[string]string{"password": Secret("podCSIAttribute"), "mountMode": "debug"}}}}},
		InitContainers: []corev1.Container{func() corev1.Container {
			c := container("init", corev1.EnvVar{Name: "API_TOKEN", Value: Secret("podInitEnv")})
			c.Args = append(c.Args, "--vault-token="+Secret("podInitArgs"))
			return c
		}()},
		Containers: []corev1.Container{{
			Name: "app", Image: "nginx:1.27", Env: append([]corev1.EnvVar{env("podEnv")}, harmlessEnv...),
			Command: []string{"sh", "-c", "mysql -u root -p" + Secret("podShellMysql") + " app"},
			Args: []string{"--port=8080", "--password=" + Secret("podArgEquals"), "--client-secret", Secret("podArgNext"), "--verbose",
				"-Djavax.net.ssl.keyStorePassword=" + Secret("podJavaProp")},
			LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"check", "--token", Secret("podProbeExec")}}}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8443),
				HTTPHeaders: []corev1.HTTPHeader{{Name: "Authorization", Value: "Bearer " + Secret("podProbeHeader")}, {Name: "X-Env", Value: "debug"}}}}},
			Lifecycle: &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c",
				"curl -u admin:" + Secret("podHookCurl") + " https://hooks.example.com"}}}},
		}},
	}}
	if _, err := admin.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return err
	}
	// Ephemeral containers are added through their subresource.
	p, err := admin.CoreV1().Pods(ns).Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		return err
	}
	p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		Name: "debug", Image: "busybox", Env: []corev1.EnvVar{{Name: "VAULT_TOKEN", Value: Secret("podEphemeralEnv")}}}}}
	if _, err := admin.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, "app", p, metav1.UpdateOptions{}); err != nil {
		return err
	}
	kapp, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "copied"},
		"stringData": map[string]string{"password": Secret("deployKapp")}})
	depMeta := om
	depMeta.Annotations = map[string]string{"kapp.k14s.io/original": string(kapp)}
	depTpl := template("deployEnv")
	depTpl.Annotations = map[string]string{"example.com/api-token": Secret("deployTplAnnot"), "example.com/owner": "platform-team"}
	if _, err := admin.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: depMeta,
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: sel, Template: depTpl}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := admin.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{ObjectMeta: om,
		Spec: appsv1.StatefulSetSpec{Replicas: &one, Selector: sel, Template: template("statefulEnv")}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := admin.AppsV1().DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{ObjectMeta: om,
		Spec: appsv1.DaemonSetSpec{Selector: sel, Template: template("daemonEnv")}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := admin.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: om,
		Spec: appsv1.ReplicaSetSpec{Replicas: &one, Selector: sel, Template: template("replicaEnv")}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	jobTpl := template("")
	jobTpl.Spec = corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27",
		Args: []string{"--port=8080", "--db-password", Secret("jobArgs")}}}}
	if _, err := admin.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{ObjectMeta: om, Spec: batchv1.JobSpec{Template: jobTpl}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	cronTpl := template("cronEnv")
	cronTpl.Spec.RestartPolicy = corev1.RestartPolicyNever
	if _, err := admin.BatchV1().CronJobs(ns).Create(ctx, &batchv1.CronJob{ObjectMeta: om, Spec: batchv1.CronJobSpec{Schedule: "0 * * * *",
		JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: cronTpl}}}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	rcTpl := template("rcEnv")
	if _, err := admin.CoreV1().ReplicationControllers(ns).Create(ctx, &corev1.ReplicationController{ObjectMeta: om,
		Spec: corev1.ReplicationControllerSpec{Replicas: &one, Selector: map[string]string{"app": "app"}, Template: &rcTpl}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := admin.CoreV1().PodTemplates(ns).Create(ctx, &corev1.PodTemplate{ObjectMeta: om, Template: template("podTemplateEnv")}, metav1.CreateOptions{}); err != nil {
		return err
	}

	if _, err := admin.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "app", Annotations: map[string]string{
		"example.com/backend-config": fmt.Sprintf(`{"upstream":"db.internal","auth":{"user":"svc","password":%q}}`, Secret("svcAnnotationJSON")),
		"example.com/owner":          "platform-team"}},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 8443}}}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	velaApp, _ := json.Marshal(map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "x"},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "x", "image": "nginx:1.27",
			"env": []any{map[string]any{"name": "SECRET_KEY", "value": Secret("cmVelaEnv")}}}}}}}})
	rancher, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "r"},
		"data": map[string]string{"token": base64.StdEncoding.EncodeToString([]byte(Secret("cmRancherSecret")))}})
	cmMeta := om
	cmMeta.Annotations = map[string]string{
		"kapp.k14s.io/original":                  fmt.Sprintf(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"c"},"stringData":{"anything":%q}}`, Secret("cmCopiedSecret")),
		"app.oam.dev/last-applied-configuration": string(velaApp),
		"objectset.rio.cattle.io/applied":        base64.StdEncoding.EncodeToString(gz(string(rancher))),
		"example.com/applied-yaml":               "apiVersion: v1\nkind: Secret\nmetadata:\n  name: y\nstringData:\n  note: " + Secret("cmYAMLSecret") + "\n",
		"example.com/owner":                      "platform-team",
	}
	cm := &corev1.ConfigMap{ObjectMeta: cmMeta,
		Data: map[string]string{
			"log_level":      "debug",
			"token":          Secret("cmKey"),
			"app.properties": "db.host=db.internal\ndb.password=" + Secret("cmProperties") + "\n",
			"config.json":    fmt.Sprintf(`{"database":{"host":"db.internal","password":%q},"level":"debug"}`, Secret("cmJSON")),
			".env":           "LOG_LEVEL=debug\nexport STRIPE_API_KEY=" + Secret("cmDotenv") + "\n",
			"kubeconfig":     kubeconfig(Secret("cmKubeconfig"), "-----BEGIN EC PRIVATE KEY-----\n"+Secret("cmKubeconfigKey")+"\n-----END EC PRIVATE KEY-----"),
			"manifest.yaml":  "apiVersion: v1\nkind: Secret\nmetadata:\n  name: m\nstringData:\n  user: " + Secret("cmManifest") + "\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  level: debug\n",
		},
		BinaryData: map[string][]byte{
			"settings.gz": gz("level: debug\npassword: " + Secret("cmBinaryGzip") + "\n"),
			"admin.conf":  []byte(kubeconfig(Secret("cmBinaryKubeconfig"), "k")),
			"logo.txt":    []byte("widget-operator"),
		},
	}
	if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		return err
	}
	release, _ := json.Marshal(map[string]any{"name": "app", "version": 1, "namespace": ns,
		"config":   map[string]any{"db": map[string]any{"password": Secret("helmConfig"), "host": "db.internal"}},
		"chart":    map[string]any{"metadata": map[string]any{"name": "app", "version": "1.0.0"}, "values": map[string]any{"image": "nginx:1.27"}},
		"manifest": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  pw: " + Secret("helmManifest") + "\n"})
	if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "sh.helm.release.v1.app.v1", Labels: map[string]string{"owner": "helm", "name": "app", "status": "deployed"}},
		Data:       map[string]string{"release": base64.StdEncoding.EncodeToString(gz(string(release)))}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app",
		Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": fmt.Sprintf(`{"stringData":{"p":%q}}`, Secret("secretAnnotated"))}},
		StringData: map[string]string{"password": Secret("secretData")}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := admin.CoreV1().Events(ns).Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "app.1"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web-0", Namespace: ns},
		Reason:         "Failed", Message: "exec failed: run --password " + Secret("eventMessage") + " against db", Type: "Warning"}, metav1.CreateOptions{}); err != nil {
		return err
	}
	return plantCustom(ctx, admin, ns)
}

func plantCustom(ctx context.Context, admin *kubernetes.Clientset, ns string) error {
	crd := []byte(`{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"vaults.corpus.example.com"},
		"spec":{"group":"corpus.example.com","names":{"plural":"vaults","singular":"vault","kind":"Vault"},"scope":"Namespaced",
		"versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]}}`)
	err := admin.RESTClient().Post().AbsPath("/apis/apiextensions.k8s.io/v1/customresourcedefinitions").Body(crd).Do(ctx).Error()
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	vault, _ := json.Marshal(map[string]any{"apiVersion": "corpus.example.com/v1", "kind": "Vault", "metadata": map[string]any{"name": "app"},
		"spec": map[string]any{
			"apiKey":      Secret("crKey"),
			"color":       "blue",
			"bootstrap":   base64.StdEncoding.EncodeToString(gz("run --password " + Secret("crB64Text"))),
			"owner":       "widget-operator",
			"port":        8443,
			"credentials": map[string]any{"user": "admin", "value": Secret("crNested")},
			"template": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "x", "image": "nginx:1.27",
				"env": []any{map[string]any{"name": "SECRET_KEY", "value": Secret("crEnv")}, map[string]any{"name": "LOG_LEVEL", "value": "debug"}}}}}},
			"settings": "level: debug\nauth:\n  password: " + Secret("crYAMLString") + "\n",
		},
		"status": map[string]any{"message": "probe ran: check --token " + Secret("crStatusWords") + " failed", "phase": "debug"}})
	// The CRD's API is served once it is established.
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		err := admin.RESTClient().Post().AbsPath("/apis/corpus.example.com/v1/namespaces/" + ns + "/vaults").Body(vault).Do(ctx).Error()
		return err == nil, nil
	})
}

// Reads are the kube_get arguments that read every planted object in ns:
// each object by name and each resource as a list, events also under
// events.k8s.io.
func Reads(ns string) []map[string]any {
	var reads []map[string]any
	seen := map[string]bool{}
	places := make([]string, 0, len(Places))
	for p := range Places {
		places = append(places, p)
	}
	slices.Sort(places)
	for _, place := range places {
		rn := Places[place]
		if key := rn[0] + "/" + rn[1]; !seen[key] {
			seen[key] = true
			reads = append(reads, map[string]any{"resource": rn[0], "namespace": ns, "name": rn[1]})
		}
		if !seen[rn[0]] {
			seen[rn[0]] = true
			reads = append(reads, map[string]any{"resource": rn[0], "namespace": ns})
		}
	}
	return append(reads, map[string]any{"resource": "events.events.k8s.io", "namespace": ns},
		map[string]any{"resource": "events.events.k8s.io", "namespace": ns, "name": "app.1"})
}

// Forms are the encodings a value is searched for in: raw, base64 and
// base64url (padded or not), percent-encoded, and JSON-escaped.
func Forms(s string) []string {
	q, _ := json.Marshal(s)
	return []string{s, base64.StdEncoding.EncodeToString([]byte(s)), base64.RawStdEncoding.EncodeToString([]byte(s)),
		base64.URLEncoding.EncodeToString([]byte(s)), base64.RawURLEncoding.EncodeToString([]byte(s)),
		url.QueryEscape(s), url.PathEscape(s), string(q[1 : len(q)-1])}
}

// Reveals reports whether text (a result, or a recording's bytes) holds
// secret in any of its forms, directly or inside any base64- or
// gzip-encoded string it carries (decoded up to three layers).
func Reveals(text, secret string) bool {
	return reveals(text, secret, 0)
}

func reveals(text, secret string, depth int) bool {
	for _, f := range Forms(secret) {
		if strings.Contains(text, f) {
			return true
		}
	}
	if depth >= 3 {
		return false
	}
	for _, tok := range encodedRuns(text) {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			raw, err := enc.DecodeString(tok)
			if err != nil {
				continue
			}
			if len(raw) > 2 && raw[0] == 0x1f && raw[1] == 0x8b {
				if zr, err := gzip.NewReader(bytes.NewReader(raw)); err == nil {
					if out, err := io.ReadAll(io.LimitReader(zr, 64<<20)); err == nil {
						raw = out
					}
				}
			}
			if reveals(string(raw), secret, depth+1) {
				return true
			}
			break
		}
	}
	return false
}

// encodedRuns are the runs of base64 characters, 16 or more long.
func encodedRuns(text string) []string {
	var out []string
	start := -1
	for i := 0; i <= len(text); i++ {
		c := byte(0)
		if i < len(text) {
			c = text[i]
		}
		in := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' || c == '-' || c == '_'
		switch {
		case in && start < 0:
			start = i
		case !in && start >= 0:
			if i-start >= 16 {
				out = append(out, text[start:i])
			}
			start = -1
		}
	}
	return out
}
