package analyze

import (
	"encoding/base64"
	"fmt"
	"strings"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	telemetryapi "istio.io/api/telemetry/v1alpha1"
	typeapi "istio.io/api/type/v1beta1"
	telemetry "istio.io/client-go/pkg/apis/telemetry/v1"
)

// The Kubernetes kinds analysis reads are decoded by hand, and only the
// fields analyzers look at (metadata; Service selectors and ports; pod
// containers, service account, host network; workload pod templates).
// The generic reflection-based converter costs more than everything else
// in a large offline analysis. Fields of the wrong type are reported with
// their path, as the converter would.

type kubeDecoder struct{ err error }

func (d *kubeDecoder) fail(path, want string, v any) {
	if d.err == nil {
		d.err = fmt.Errorf("%s: expected %s, got %T", path, want, v)
	}
}

func (d *kubeDecoder) obj(m map[string]any, k, path string) map[string]any {
	v, ok := m[k]
	if !ok || v == nil {
		return nil
	}
	o, ok := v.(map[string]any)
	if !ok {
		d.fail(path+"."+k, "an object", v)
	}
	return o
}

func (d *kubeDecoder) list(m map[string]any, k, path string) []any {
	v, ok := m[k]
	if !ok || v == nil {
		return nil
	}
	l, ok := v.([]any)
	if !ok {
		d.fail(path+"."+k, "a list", v)
	}
	return l
}

func (d *kubeDecoder) str(m map[string]any, k, path string) string {
	v, ok := m[k]
	if !ok || v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		d.fail(path+"."+k, "a string", v)
	}
	return s
}

func (d *kubeDecoder) integer(m map[string]any, k, path string) int64 {
	v, ok := m[k]
	if !ok || v == nil {
		return 0
	}
	switch n := v.(type) {
	case int64:
		return n
	case float64:
		if n == float64(int64(n)) {
			return int64(n)
		}
	}
	d.fail(path+"."+k, "an integer", v)
	return 0
}

// optInt reads an optional integer: nil when absent.
func (d *kubeDecoder) optInt(m map[string]any, k, path string) *int64 {
	if v, ok := m[k]; !ok || v == nil {
		return nil
	}
	n := d.integer(m, k, path)
	return &n
}

func (d *kubeDecoder) boolean(m map[string]any, k, path string) bool {
	v, ok := m[k]
	if !ok || v == nil {
		return false
	}
	b, ok := v.(bool)
	if !ok {
		d.fail(path+"."+k, "true or false", v)
	}
	return b
}

func (d *kubeDecoder) strMap(m map[string]any, k, path string) map[string]string {
	o := d.obj(m, k, path)
	if o == nil {
		return nil
	}
	out := make(map[string]string, len(o))
	for key, v := range o {
		s, ok := v.(string)
		if !ok {
			d.fail(path+"."+k+"."+key, "a string", v)
			continue
		}
		out[key] = s
	}
	return out
}

func (d *kubeDecoder) meta(m map[string]any, path string) metav1.ObjectMeta {
	md := d.obj(m, "metadata", path)
	if md == nil {
		return metav1.ObjectMeta{}
	}
	p := path + ".metadata"
	om := metav1.ObjectMeta{
		Name: d.str(md, "name", p), GenerateName: d.str(md, "generateName", p), Namespace: d.str(md, "namespace", p),
		Labels: d.strMap(md, "labels", p), Annotations: d.strMap(md, "annotations", p),
	}
	for range d.list(md, "ownerReferences", p) {
		om.OwnerReferences = append(om.OwnerReferences, metav1.OwnerReference{})
	}
	return om
}

func (d *kubeDecoder) podSpec(m map[string]any, path string) corev1.PodSpec {
	if m == nil {
		return corev1.PodSpec{}
	}
	spec := corev1.PodSpec{ServiceAccountName: d.str(m, "serviceAccountName", path), HostNetwork: d.boolean(m, "hostNetwork", path)}
	if sc := d.obj(m, "securityContext", path); sc != nil {
		spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: d.optInt(sc, "runAsUser", path+".securityContext")}
	}
	if spec.ServiceAccountName == "" {
		spec.ServiceAccountName = d.str(m, "serviceAccount", path)
	}
	for _, field := range []string{"initContainers", "containers"} {
		for i, c := range d.list(m, field, path) {
			cm, ok := c.(map[string]any)
			if !ok {
				d.fail(fmt.Sprintf("%s.%s[%d]", path, field, i), "an object", c)
				continue
			}
			ctr := corev1.Container{Name: d.str(cm, "name", path+"."+field), Image: d.str(cm, "image", path+"."+field)}
			if sc := d.obj(cm, "securityContext", path+"."+field); sc != nil {
				ctr.SecurityContext = &corev1.SecurityContext{RunAsUser: d.optInt(sc, "runAsUser", path+"."+field+".securityContext")}
			}
			if field == "containers" {
				spec.Containers = append(spec.Containers, ctr)
			} else {
				spec.InitContainers = append(spec.InitContainers, ctr)
			}
		}
	}
	return spec
}

func (d *kubeDecoder) template(m map[string]any, path string) corev1.PodTemplateSpec {
	if m == nil {
		return corev1.PodTemplateSpec{}
	}
	return corev1.PodTemplateSpec{ObjectMeta: d.meta(m, path), Spec: d.podSpec(d.obj(m, "spec", path), path+".spec")}
}

func (d *kubeDecoder) workloadTemplate(m map[string]any) corev1.PodTemplateSpec {
	spec := d.obj(m, "spec", "")
	if spec == nil {
		return corev1.PodTemplateSpec{}
	}
	return d.template(d.obj(spec, "template", "spec"), "spec.template")
}

// decodeKube decodes the Kubernetes kinds analysis reads; it returns nil
// for other kinds.
func decodeKube(kind, group string, m map[string]any) (runtime.Object, error) {
	d := &kubeDecoder{}
	var obj runtime.Object
	switch group + "/" + kind {
	case "/Namespace":
		obj = &corev1.Namespace{ObjectMeta: d.meta(m, "")}
	case "/Secret":
		// Only gateway credentials are looked at (internal/credential);
		// Data stays nil when the object carries neither data nor
		// stringData, so that only the Secret's existence is judged.
		sec := &corev1.Secret{ObjectMeta: d.meta(m, ""), Type: corev1.SecretType(d.str(m, "type", ""))}
		for k, v := range d.strMap(m, "data", "") {
			b, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				d.fail("data."+k, "base64", v)
				continue
			}
			if sec.Data == nil {
				sec.Data = map[string][]byte{}
			}
			sec.Data[k] = b
		}
		for k, v := range d.strMap(m, "stringData", "") {
			if sec.Data == nil {
				sec.Data = map[string][]byte{}
			}
			sec.Data[k] = []byte(v)
		}
		obj = sec
	case "/Service":
		svc := &corev1.Service{ObjectMeta: d.meta(m, "")}
		if spec := d.obj(m, "spec", ""); spec != nil {
			svc.Spec.Selector = d.strMap(spec, "selector", "spec")
			svc.Spec.Type = corev1.ServiceType(d.str(spec, "type", "spec"))
			for i, p := range d.list(spec, "ports", "spec") {
				pp := fmt.Sprintf("spec.ports[%d]", i)
				pm, ok := p.(map[string]any)
				if !ok {
					d.fail(pp, "an object", p)
					continue
				}
				port := corev1.ServicePort{Name: d.str(pm, "name", pp), Port: int32(d.integer(pm, "port", pp)), Protocol: corev1.Protocol(d.str(pm, "protocol", pp))}
				if ap := d.str(pm, "appProtocol", pp); ap != "" {
					port.AppProtocol = &ap
				}
				switch t := pm["targetPort"].(type) {
				case nil:
				case int64:
					port.TargetPort = intstr.FromInt32(int32(t))
				case string:
					port.TargetPort = intstr.FromString(t)
				default:
					d.fail(pp+".targetPort", "a port number or name", t)
				}
				svc.Spec.Ports = append(svc.Spec.Ports, port)
			}
		}
		obj = svc
	case "/Pod":
		obj = &corev1.Pod{ObjectMeta: d.meta(m, ""), Spec: d.podSpec(d.obj(m, "spec", ""), "spec")}
	case "apps/Deployment":
		o := &appsv1.Deployment{ObjectMeta: d.meta(m, "")}
		o.Spec.Template = d.workloadTemplate(m)
		obj = o
	case "apps/StatefulSet":
		o := &appsv1.StatefulSet{ObjectMeta: d.meta(m, "")}
		o.Spec.Template = d.workloadTemplate(m)
		obj = o
	case "apps/DaemonSet":
		o := &appsv1.DaemonSet{ObjectMeta: d.meta(m, "")}
		o.Spec.Template = d.workloadTemplate(m)
		obj = o
	case "apps/ReplicaSet":
		o := &appsv1.ReplicaSet{ObjectMeta: d.meta(m, "")}
		o.Spec.Template = d.workloadTemplate(m)
		obj = o
	case "batch/Job":
		o := &batchv1.Job{ObjectMeta: d.meta(m, "")}
		o.Spec.Template = d.workloadTemplate(m)
		obj = o
	case "batch/CronJob":
		o := &batchv1.CronJob{ObjectMeta: d.meta(m, "")}
		if spec := d.obj(m, "spec", ""); spec != nil {
			if jt := d.obj(spec, "jobTemplate", "spec"); jt != nil {
				if js := d.obj(jt, "spec", "spec.jobTemplate"); js != nil {
					o.Spec.JobTemplate.Spec.Template = d.template(d.obj(js, "template", "spec.jobTemplate.spec"), "spec.jobTemplate.spec.template")
				}
			}
		}
		obj = o
	case "admissionregistration.k8s.io/MutatingWebhookConfiguration":
		o := &admissionv1.MutatingWebhookConfiguration{ObjectMeta: d.meta(m, "")}
		for _, wh := range d.webhooks(m) {
			o.Webhooks = append(o.Webhooks, admissionv1.MutatingWebhook{Name: wh.Name, ClientConfig: wh.ClientConfig,
				NamespaceSelector: wh.NamespaceSelector, ObjectSelector: wh.ObjectSelector})
		}
		obj = o
	case "admissionregistration.k8s.io/ValidatingWebhookConfiguration":
		o := &admissionv1.ValidatingWebhookConfiguration{ObjectMeta: d.meta(m, "")}
		o.Webhooks = d.webhooks(m)
		obj = o
	case "telemetry.istio.io/Telemetry":
		obj = d.telemetry(m)
	case "/ConfigMap":
		// Only the injector's configuration (IST0158) and the mesh
		// config are read; other ConfigMaps keep their metadata only.
		md := d.meta(m, "")
		if !strings.HasPrefix(md.Name, InjectorConfigMap) && md.Name != MeshConfigMap {
			return nil, nil
		}
		obj = &corev1.ConfigMap{ObjectMeta: md, Data: d.strMap(m, "data", "")}
	case "apiextensions.k8s.io/CustomResourceDefinition":
		obj = d.crd(m)
	default:
		if group == gatewayAPIGroup {
			return decodeGatewayAPI(kind, m)
		}
		return nil, nil
	}
	return obj, d.err
}

// InjectorConfigMap is the name (before any "-<revision>" suffix) of the
// ConfigMap holding what the mesh's injector puts into pods.
const InjectorConfigMap = "mesh-sidecar-injector"

// webhooks decodes each webhook's name, the Service its client config
// calls and its namespace and object selectors.
func (d *kubeDecoder) webhooks(m map[string]any) []admissionv1.ValidatingWebhook {
	var out []admissionv1.ValidatingWebhook
	for i, w := range d.list(m, "webhooks", "") {
		p := fmt.Sprintf("webhooks[%d]", i)
		wm, ok := w.(map[string]any)
		if !ok {
			d.fail(p, "an object", w)
			continue
		}
		wh := admissionv1.ValidatingWebhook{Name: d.str(wm, "name", p)}
		if cc := d.obj(wm, "clientConfig", p); cc != nil {
			if svc := d.obj(cc, "service", p+".clientConfig"); svc != nil {
				sp := p + ".clientConfig.service"
				ref := &admissionv1.ServiceReference{Namespace: d.str(svc, "namespace", sp), Name: d.str(svc, "name", sp)}
				if port := d.optInt(svc, "port", sp); port != nil {
					n := int32(*port)
					ref.Port = &n
				}
				wh.ClientConfig.Service = ref
			}
		}
		wh.NamespaceSelector = d.labelSelector(wm, "namespaceSelector", p)
		wh.ObjectSelector = d.labelSelector(wm, "objectSelector", p)
		out = append(out, wh)
	}
	return out
}

// labelSelector decodes a metav1.LabelSelector (nil when absent).
func (d *kubeDecoder) labelSelector(m map[string]any, k, path string) *metav1.LabelSelector {
	sm := d.obj(m, k, path)
	if sm == nil {
		return nil
	}
	p := path + "." + k
	sel := &metav1.LabelSelector{MatchLabels: d.strMap(sm, "matchLabels", p)}
	for i, e := range d.list(sm, "matchExpressions", p) {
		ep := fmt.Sprintf("%s.matchExpressions[%d]", p, i)
		em, ok := e.(map[string]any)
		if !ok {
			d.fail(ep, "an object", e)
			continue
		}
		req := metav1.LabelSelectorRequirement{Key: d.str(em, "key", ep), Operator: metav1.LabelSelectorOperator(d.str(em, "operator", ep))}
		for j, v := range d.list(em, "values", ep) {
			s, ok := v.(string)
			if !ok {
				d.fail(fmt.Sprintf("%s.values[%d]", ep, j), "a string", v)
				continue
			}
			req.Values = append(req.Values, s)
		}
		sel.MatchExpressions = append(sel.MatchExpressions, req)
	}
	return sel
}

func (d *kubeDecoder) policyTarget(m map[string]any, path string) *typeapi.PolicyTargetReference {
	return &typeapi.PolicyTargetReference{Group: d.str(m, "group", path), Kind: d.str(m, "kind", path),
		Name: d.str(m, "name", path), Namespace: d.str(m, "namespace", path)}
}

// telemetry decodes what the Telemetry analyzers read: the selector and
// the provider names of each accessLogging, tracing and metrics entry.
func (d *kubeDecoder) telemetry(m map[string]any) *telemetry.Telemetry {
	t := &telemetry.Telemetry{ObjectMeta: d.meta(m, "")}
	spec := d.obj(m, "spec", "")
	if spec == nil {
		return t
	}
	if sel := d.obj(spec, "selector", "spec"); sel != nil {
		t.Spec.Selector = &typeapi.WorkloadSelector{MatchLabels: d.strMap(sel, "matchLabels", "spec.selector")}
	}
	// targetRef(s) decide which Gateway a Telemetry attaches to (IST0166).
	if ref := d.obj(spec, "targetRef", "spec"); ref != nil {
		t.Spec.TargetRef = d.policyTarget(ref, "spec.targetRef")
	}
	for i, ref := range d.list(spec, "targetRefs", "spec") {
		rm, ok := ref.(map[string]any)
		if !ok {
			d.fail(fmt.Sprintf("spec.targetRefs[%d]", i), "an object", ref)
			continue
		}
		t.Spec.TargetRefs = append(t.Spec.TargetRefs, d.policyTarget(rm, fmt.Sprintf("spec.targetRefs[%d]", i)))
	}
	providers := func(field string, i int, e map[string]any) []*telemetryapi.ProviderRef {
		var out []*telemetryapi.ProviderRef
		for j, p := range d.list(e, "providers", fmt.Sprintf("spec.%s[%d]", field, i)) {
			pm, ok := p.(map[string]any)
			if !ok {
				d.fail(fmt.Sprintf("spec.%s[%d].providers[%d]", field, i, j), "an object", p)
				continue
			}
			out = append(out, &telemetryapi.ProviderRef{Name: d.str(pm, "name", fmt.Sprintf("spec.%s[%d].providers[%d]", field, i, j))})
		}
		return out
	}
	for _, field := range []string{"accessLogging", "tracing", "metrics"} {
		for i, e := range d.list(spec, field, "spec") {
			em, ok := e.(map[string]any)
			if !ok {
				d.fail(fmt.Sprintf("spec.%s[%d]", field, i), "an object", e)
				continue
			}
			ps := providers(field, i, em)
			switch field {
			case "accessLogging":
				t.Spec.AccessLogging = append(t.Spec.AccessLogging, &telemetryapi.AccessLogging{Providers: ps})
			case "tracing":
				t.Spec.Tracing = append(t.Spec.Tracing, &telemetryapi.Tracing{Providers: ps})
			case "metrics":
				t.Spec.Metrics = append(t.Spec.Metrics, &telemetryapi.Metrics{Providers: ps})
			}
		}
	}
	return t
}
