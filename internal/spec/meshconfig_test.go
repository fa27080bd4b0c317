package spec

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// A meshConfig mistake is refused when the mesh spec is built, naming the
// field, instead of being rendered into a ConfigMap pilot will not start
// on; a field the mesh does not carry out is a warning.
func TestMeshConfigChecked(t *testing.T) {
	_, _, err := Load(LoadOptions{Sets: []string{"meshConfig.accesLogFile=/dev/stdout"}})
	var setErr *SetError
	if !errors.As(err, &setErr) || !strings.Contains(err.Error(), `"accesLogFile"`) || !strings.Contains(err.Error(), `did you mean "meshConfig.accessLogFile"`) {
		t.Errorf("misspelt --set meshConfig field: %v; want a --set error suggesting accessLogFile", err)
	}
	_, _, err = Load(LoadOptions{Sets: []string{"meshConfig.extensionProviders[0].zipkin.servise=zipkin"}})
	if !errors.As(err, &setErr) || !strings.Contains(err.Error(), `meshConfig.extensionProviders[0].zipkin has no field "servise"`) {
		t.Errorf("misspelt nested --set meshConfig field: %v", err)
	}
	if _, _, err := Load(LoadOptions{Sets: []string{"meshConfig.defaultConfig.proxyMetadata.FOO=bar", "meshConfig.accessLogFile=/dev/stdout"}}); err != nil {
		t.Errorf("valid meshConfig sets: %v", err)
	}

	f := writeFile(t, "mesh.yaml", "apiVersion: install.mesh.io/v1alpha1\nkind: MeshOperator\nspec:\n  meshConfig:\n    outboundTrafficPolicy: {mod: REGISTRY_ONLY}\n")
	_, _, err = Load(LoadOptions{Files: []string{f}})
	var invalid *InvalidSpecError
	if !errors.As(err, &invalid) || !strings.Contains(err.Error(), "meshConfig") || !strings.Contains(err.Error(), "mod") {
		t.Errorf("unknown meshConfig field in a file: %v; want an invalid spec error naming meshConfig and the field", err)
	}
	f = writeFile(t, "mesh.yaml", "apiVersion: install.mesh.io/v1alpha1\nkind: MeshOperator\nspec:\n  meshConfig:\n    extensionProviders: [{name: z, zipkin: {port: 9411}}]\n")
	if _, _, err := Load(LoadOptions{Files: []string{f}}); !errors.As(err, &invalid) || !strings.Contains(err.Error(), "meshConfig.extensionProviders[0].zipkin") {
		t.Errorf("zipkin provider without a service: %v; want the error pilot would stop on", err)
	}

	_, warns, err := Load(LoadOptions{Sets: []string{"meshConfig.trustDomainAliases=[old.example]", "meshConfig.rootNamespace=mesh-system"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(warns, func(w string) bool { return strings.HasPrefix(w, "meshConfig.trustDomainAliases is not carried out: ") }) ||
		slices.ContainsFunc(warns, func(w string) bool { return strings.Contains(w, "rootNamespace") }) {
		t.Errorf("warnings %q; want trustDomainAliases, not rootNamespace", warns)
	}
}
