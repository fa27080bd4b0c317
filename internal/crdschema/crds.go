package crdschema

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	networking "istio.io/api/networking/v1"
	security "istio.io/api/security/v1"
	telemetry "istio.io/api/telemetry/v1"

	meshnet "mesh.dev/mesh/internal/api/networking/v1alpha1"
	"mesh.dev/mesh/internal/spec"
)

// CRD describes one CustomResourceDefinition the base chart ships.
type CRD struct {
	Group      string
	Kind       string
	Plural     string
	ShortNames []string
	Categories []string
	Versions   []string // served versions; the first is stored
	Spec       Schema
	Columns    []Column
}

// Column is an additionalPrinterColumn.
type Column struct{ Name, Type, JSONPath string }

// Name returns the CRD's metadata.name, <plural>.<group>.
func (c CRD) Name() string { return c.Plural + "." + c.Group }

func istio(group string, msg proto.Message, plural string, short []string, versions []string, cols ...Column) CRD {
	md := msg.ProtoReflect().Descriptor()
	cat := strings.ReplaceAll(strings.TrimSuffix(group, ".io"), ".", "-")
	return CRD{
		Group: group, Kind: string(md.Name()), Plural: plural, ShortNames: short,
		Categories: []string{"istio-io", cat + "-io"},
		Versions:   versions,
		Spec:       fromMessage(md, map[protoreflect.FullName]bool{}),
		Columns:    cols,
	}
}

// All returns every CRD the base chart ships, in a stable order.
func All() []CRD {
	netV := []string{"v1", "v1beta1", "v1alpha3"}
	secV := []string{"v1", "v1beta1"}
	crds := []CRD{
		istio("networking.istio.io", &networking.DestinationRule{}, "destinationrules", []string{"dr"}, netV,
			Column{"Host", "string", ".spec.host"}),
		istio("networking.istio.io", &networking.Gateway{}, "gateways", []string{"gw"}, netV),
		istio("networking.istio.io", &networking.ServiceEntry{}, "serviceentries", []string{"se"}, netV,
			Column{"Hosts", "string", ".spec.hosts"}, Column{"Location", "string", ".spec.location"}, Column{"Resolution", "string", ".spec.resolution"}),
		istio("networking.istio.io", &networking.Sidecar{}, "sidecars", nil, netV),
		istio("networking.istio.io", &networking.VirtualService{}, "virtualservices", []string{"vs"}, netV,
			Column{"Gateways", "string", ".spec.gateways"}, Column{"Hosts", "string", ".spec.hosts"}),
		istio("networking.istio.io", &networking.WorkloadEntry{}, "workloadentries", []string{"we"}, netV,
			Column{"Address", "string", ".spec.address"}),
		istio("security.istio.io", &security.AuthorizationPolicy{}, "authorizationpolicies", []string{"ap"}, secV,
			Column{"Action", "string", ".spec.action"}),
		istio("security.istio.io", &security.PeerAuthentication{}, "peerauthentications", []string{"pa"}, secV,
			Column{"Mode", "string", ".spec.mtls.mode"}),
		istio("security.istio.io", &security.RequestAuthentication{}, "requestauthentications", []string{"ra"}, secV),
		istio("telemetry.istio.io", &telemetry.Telemetry{}, "telemetries", []string{"telemetry"}, []string{"v1", "v1alpha1"}),
		{
			Group: meshnet.GroupName, Kind: meshnet.Kind, Plural: meshnet.Plural, ShortNames: []string{"mr"},
			Categories: []string{"mesh-io", "networking-mesh-io"},
			Versions:   []string{meshnet.Version},
			Spec:       fromGoType(reflect.TypeOf(meshnet.MetaRouteSpec{})),
			Columns:    []Column{{"Hosts", "string", ".spec.hosts"}},
		},
		{
			Group: "install.mesh.io", Kind: spec.Kind, Plural: "meshoperators", ShortNames: []string{"mo"},
			Categories: []string{"mesh-io"},
			Versions:   []string{"v1alpha1"},
			Spec:       fromGoType(reflect.TypeOf(spec.MeshOperatorSpec{})),
			Columns:    []Column{{"Profile", "string", ".spec.profile"}, {"Revision", "string", ".spec.revision"}},
		},
	}
	return crds
}

// Object returns the CustomResourceDefinition as a generic object, without labels.
func (c CRD) Object() map[string]any {
	versions := make([]any, 0, len(c.Versions))
	for i, v := range c.Versions {
		ver := map[string]any{
			"name": v, "served": true, "storage": i == 0,
			"subresources": map[string]any{"status": map[string]any{}},
			"schema": map[string]any{"openAPIV3Schema": Schema{
				"type": "object",
				"properties": Schema{
					"spec":   c.Spec,
					"status": Schema{"type": "object", "x-kubernetes-preserve-unknown-fields": true},
				},
			}},
		}
		cols := []any{}
		for _, col := range c.Columns {
			cols = append(cols, map[string]any{"name": col.Name, "type": col.Type, "jsonPath": col.JSONPath})
		}
		cols = append(cols, map[string]any{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})
		ver["additionalPrinterColumns"] = cols
		versions = append(versions, ver)
	}
	names := map[string]any{
		"kind": c.Kind, "listKind": c.Kind + "List", "plural": c.Plural,
		"singular": strings.ToLower(c.Kind), "categories": toAny(c.Categories),
	}
	if len(c.ShortNames) > 0 {
		names["shortNames"] = toAny(c.ShortNames)
	}
	return map[string]any{
		"group":    c.Group,
		"names":    names,
		"scope":    "Namespaced",
		"versions": versions,
	}
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}

// Template returns the base chart's crds.yaml template: every CRD with the
// chart's labels. The CRDs are written as compact JSON (which is YAML too)
// because they are most of a manifest and JSON decodes many times faster;
// `mesh manifest generate` prints them as readable YAML.
func Template() ([]byte, error) {
	var b strings.Builder
	b.WriteString("# Generated by `go generate ./manifests` (internal/crdschema); do not edit.\n")
	b.WriteString("# The CRDs are JSON documents, which YAML readers accept as they are.\n")
	b.WriteString("{{- if .Values.base.enableCRDs }}\n")
	for _, c := range All() {
		body, err := json.Marshal(c.Object())
		if err != nil {
			return nil, fmt.Errorf("crd %s: %w", c.Name(), err)
		}
		fmt.Fprintf(&b, "---\n{\"apiVersion\": \"apiextensions.k8s.io/v1\", \"kind\": \"CustomResourceDefinition\",\n"+
			"\"metadata\": {\"name\": %q, \"labels\": {{ include \"base.labels\" . | fromYaml | toJson }}},\n\"spec\": %s}\n", c.Name(), body)
	}
	b.WriteString("{{- end }}\n")
	return []byte(b.String()), nil
}
