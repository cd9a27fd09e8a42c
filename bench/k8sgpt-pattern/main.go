// k8sgpt-pattern: what `k8sgpt analyze` (no AI backend, default analyzers) asks of the API server, for the
// scale benchmark on a machine where k8sgpt itself cannot be built (the Go module proxy here refuses
// github.com/k8sgpt-ai/k8sgpt). Written from a reading of k8sgpt's analyzers (pkg/analysis/analysis.go,
// pkg/analyzer/*.go, pkg/util/util.go, pkg/kubernetes/*.go), it makes the same requests in the same order
// with the same client settings and applies the same tests to what it reads; it does not format, cache or
// explain. See bench/README.md for what it leaves out.
//
// Requests, as k8sgpt makes them:
//   - kubernetes.NewClient: client-go's default rest.Config (client-side rate limit 5 QPS, burst 10,
//     JSON) and GET /version.
//   - RunAnalysis: the core analyzers at once, at most --max-concurrency (10) at a time, each listing its
//     kind in one unpaged request across all namespaces.
//   - Pod: for every failing pod, its owner chain one GET at a time (util.GetParent: ReplicaSet, then
//     Deployment); for a Running pod with an unready container (or a ContainerCreating one), the
//     namespace's events with fieldSelector involvedObject.name=POD (FetchLatestEvent: name only).
//   - Deployment: for every Deployment whose spec.replicas differs from status.replicas, the OpenAPI v2
//     document (GetApiDocV2 -> Discovery().OpenAPISchema(), uncached).
//   - Service: Endpoints (v1); for one without subsets, GET the Service and the OpenAPI document per
//     selector key; GetParent for each result.
//   - ReplicaSet, PersistentVolumeClaim, Ingress, StatefulSet, CronJob, Node, Validating- and
//     MutatingWebhookConfiguration: their lists (with no such objects in the fixture, nothing more).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

type result struct {
	Kind, Name, Parent string
	Errors             []string
}

type analyzer func(ctx context.Context, c kubernetes.Interface) ([]result, error)

func getParent(ctx context.Context, c kubernetes.Interface, m metav1.ObjectMeta) string {
	for _, o := range m.OwnerReferences {
		switch o.Kind {
		case "ReplicaSet":
			rs, err := c.AppsV1().ReplicaSets(m.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
			if err != nil {
				return ""
			}
			if rs.OwnerReferences != nil {
				return getParent(ctx, c, rs.ObjectMeta)
			}
			return "ReplicaSet/" + rs.Name
		case "Deployment":
			d, err := c.AppsV1().Deployments(m.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
			if err != nil {
				return ""
			}
			if d.OwnerReferences != nil {
				return getParent(ctx, c, d.ObjectMeta)
			}
			return "Deployment/" + d.Name
		case "StatefulSet":
			s, err := c.AppsV1().StatefulSets(m.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
			if err != nil {
				return ""
			}
			if s.OwnerReferences != nil {
				return getParent(ctx, c, s.ObjectMeta)
			}
			return "StatefulSet/" + s.Name
		case "DaemonSet":
			d, err := c.AppsV1().DaemonSets(m.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
			if err != nil {
				return ""
			}
			if d.OwnerReferences != nil {
				return getParent(ctx, c, d.ObjectMeta)
			}
			return "DaemonSet/" + d.Name
		}
	}
	return m.Name
}

func latestEvent(ctx context.Context, c kubernetes.Interface, ns, name string) *corev1.Event {
	evs, err := c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		return nil
	}
	var latest *corev1.Event
	for i := range evs.Items {
		if latest == nil || evs.Items[i].LastTimestamp.After(latest.LastTimestamp.Time) {
			latest = &evs.Items[i]
		}
	}
	return latest
}

// apiDoc: GetApiDocV2 fetches and parses the whole OpenAPI v2 document for each call.
func apiDoc(c kubernetes.Interface) {
	if doc, err := c.Discovery().OpenAPISchema(); err == nil {
		_ = len(doc.GetDefinitions().GetAdditionalProperties())
	}
}

var errorReasons = map[string]bool{"CrashLoopBackOff": true, "ImagePullBackOff": true, "CreateContainerConfigError": true,
	"PreCreateHookError": true, "CreateContainerError": true, "PreStartHookError": true, "RunContainerError": true,
	"ImageInspectError": true, "ErrImagePull": true, "ErrImageNeverPull": true, "InvalidImageName": true}

func pods(ctx context.Context, c kubernetes.Interface) ([]result, error) {
	list, err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []result
	for _, p := range list.Items {
		var fails []string
		if p.Status.Phase == corev1.PodPending {
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodScheduled && cond.Reason == "Unschedulable" && cond.Message != "" {
					fails = append(fails, cond.Message)
				}
			}
		}
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil {
				if errorReasons[w.Reason] && w.Message != "" {
					fails = append(fails, w.Message)
				}
				if w.Reason == "ContainerCreating" && p.Status.Phase == corev1.PodPending {
					if ev := latestEvent(ctx, c, p.Namespace, p.Name); ev != nil && (ev.Reason == "FailedCreatePodSandBox" || ev.Reason == "FailedMount") && ev.Message != "" {
						fails = append(fails, ev.Message)
					}
				}
				if w.Reason == "CrashLoopBackOff" && cs.LastTerminationState.Terminated != nil {
					fails = append(fails, fmt.Sprintf("the last termination reason is %s container=%s pod=%s", cs.LastTerminationState.Terminated.Reason, cs.Name, p.Name))
				}
			} else if !cs.Ready && p.Status.Phase == corev1.PodRunning {
				if ev := latestEvent(ctx, c, p.Namespace, p.Name); ev != nil && ev.Reason == "Unhealthy" && ev.Message != "" {
					fails = append(fails, ev.Message)
				}
			}
		}
		if len(fails) > 0 {
			out = append(out, result{Kind: "Pod", Name: p.Namespace + "/" + p.Name, Errors: fails, Parent: getParent(ctx, c, p.ObjectMeta)})
		}
	}
	return out, nil
}

func deployments(ctx context.Context, c kubernetes.Interface) ([]result, error) {
	list, err := c.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []result
	for _, d := range list.Items {
		if d.Spec.Replicas != nil && *d.Spec.Replicas != d.Status.Replicas {
			apiDoc(c)
			out = append(out, result{Kind: "Deployment", Name: d.Namespace + "/" + d.Name,
				Errors: []string{fmt.Sprintf("Deployment %s/%s has %d replicas but %d are available", d.Namespace, d.Name, *d.Spec.Replicas, d.Status.Replicas)}})
		}
	}
	return out, nil
}

func services(ctx context.Context, c kubernetes.Interface) ([]result, error) {
	list, err := c.CoreV1().Endpoints("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []result
	for _, ep := range list.Items {
		var fails []string
		if len(ep.Subsets) == 0 {
			svc, err := c.CoreV1().Services(ep.Namespace).Get(ctx, ep.Name, metav1.GetOptions{})
			if err != nil {
				continue
			}
			for k, v := range svc.Spec.Selector {
				apiDoc(c)
				fails = append(fails, fmt.Sprintf("Service has no endpoints, expected label %s=%s", k, v))
			}
		} else {
			for _, s := range ep.Subsets {
				if len(s.NotReadyAddresses) > 0 {
					apiDoc(c)
					fails = append(fails, fmt.Sprintf("Service has not ready endpoints (%d)", len(s.NotReadyAddresses)))
				}
			}
		}
		if len(fails) > 0 {
			out = append(out, result{Kind: "Service", Name: ep.Namespace + "/" + ep.Name, Errors: fails, Parent: getParent(ctx, c, ep.ObjectMeta)})
		}
	}
	return out, nil
}

func replicaSets(ctx context.Context, c kubernetes.Interface) ([]result, error) {
	list, err := c.AppsV1().ReplicaSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []result
	for _, rs := range list.Items {
		if rs.Status.Replicas == 0 && rs.Spec.Replicas != nil && *rs.Spec.Replicas > 0 {
			for _, cond := range rs.Status.Conditions {
				if cond.Type == "ReplicaFailure" && cond.Reason == "FailedCreate" {
					out = append(out, result{Kind: "ReplicaSet", Name: rs.Namespace + "/" + rs.Name, Errors: []string{cond.Message}})
				}
			}
		}
	}
	return out, nil
}

func lists(ctx context.Context, c kubernetes.Interface) map[string]analyzer {
	return map[string]analyzer{
		"PersistentVolumeClaim": func(ctx context.Context, c kubernetes.Interface) ([]result, error) {
			_, err := c.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
			return nil, err
		},
		"Ingress": func(ctx context.Context, c kubernetes.Interface) ([]result, error) {
			_, err := c.NetworkingV1().Ingresses("").List(ctx, metav1.ListOptions{})
			return nil, err
		},
		"StatefulSet": func(ctx context.Context, c kubernetes.Interface) ([]result, error) {
			_, err := c.AppsV1().StatefulSets("").List(ctx, metav1.ListOptions{})
			return nil, err
		},
		"CronJob": func(ctx context.Context, c kubernetes.Interface) ([]result, error) {
			_, err := c.BatchV1().CronJobs("").List(ctx, metav1.ListOptions{})
			return nil, err
		},
		"Node": func(ctx context.Context, c kubernetes.Interface) ([]result, error) {
			list, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, err
			}
			var out []result
			for _, n := range list.Items {
				for _, cond := range n.Status.Conditions {
					if (cond.Type == corev1.NodeReady && cond.Status != corev1.ConditionTrue) || (cond.Type != corev1.NodeReady && cond.Status == corev1.ConditionTrue) {
						out = append(out, result{Kind: "Node", Name: n.Name, Errors: []string{string(cond.Type) + ": " + cond.Message}})
					}
				}
			}
			return out, nil
		},
		"ValidatingWebhookConfiguration": func(ctx context.Context, c kubernetes.Interface) ([]result, error) {
			_, err := c.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
			return nil, err
		},
		"MutatingWebhookConfiguration": func(ctx context.Context, c kubernetes.Interface) ([]result, error) {
			_, err := c.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
			return nil, err
		},
	}
}

func main() {
	filter := flag.String("filter", "", "comma-separated analyzers (k8sgpt's --filter); default: the core analyzers")
	maxConcurrency := flag.Int("max-concurrency", 10, "analyzers at once (k8sgpt's default)")
	flag.Parse()
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg.UserAgent = "k8sgpt-pattern"
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if _, err := c.Discovery().ServerVersion(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	all := lists(ctx, c)
	all["Pod"], all["Deployment"], all["Service"], all["ReplicaSet"] = pods, deployments, services, replicaSets
	run := all
	if *filter != "" {
		run = map[string]analyzer{}
		for _, f := range strings.Split(*filter, ",") {
			if a, ok := all[f]; ok {
				run[f] = a
			}
		}
	}
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		results []result
		errs    []string
	)
	sem := make(chan struct{}, *maxConcurrency)
	for name, a := range run {
		wg.Add(1)
		sem <- struct{}{}
		go func(name string, a analyzer) {
			defer wg.Done()
			defer func() { <-sem }()
			r, err := a(ctx, c)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Sprintf("[%s] %v", name, err))
			}
			results = append(results, r...)
		}(name, a)
	}
	wg.Wait()
	sort.Slice(results, func(i, j int) bool { return results[i].Kind+results[i].Name < results[j].Kind+results[j].Name })
	for i, r := range results {
		fmt.Printf("%d: %s %s(%s)\n", i, r.Kind, r.Name, r.Parent)
		for _, e := range r.Errors {
			fmt.Printf("- Error: %s\n", e)
		}
	}
	fmt.Printf("%d results\n", len(results))
	for _, e := range errs {
		fmt.Fprintln(os.Stderr, e)
	}
}
