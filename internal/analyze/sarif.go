package analyze

import (
	"encoding/json"
	"io"
	"sort"
)

// SARIF 2.1.0, the subset code-scanning tools read.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri,omitempty"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID                   string       `json:"id"`
	Name                 string       `json:"name"`
	ShortDescription     sarifText    `json:"shortDescription"`
	DefaultConfiguration sarifRuleCfg `json:"defaultConfiguration"`
}

type sarifRuleCfg struct {
	Level string `json:"level"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifResult struct {
	RuleID    string          `json:"ruleId"`
	RuleIndex int             `json:"ruleIndex"`
	Level     string          `json:"level"`
	Message   sarifText       `json:"message"`
	Locations []sarifLocation `json:"locations,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation *sarifPhysical `json:"physicalLocation,omitempty"`
	LogicalLocations []sarifLogical `json:"logicalLocations,omitempty"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

type sarifLogical struct {
	Name               string `json:"name"`
	FullyQualifiedName string `json:"fullyQualifiedName"`
	Kind               string `json:"kind"`
}

func sarifLevel(l Level) string {
	switch l {
	case Error:
		return "error"
	case Warning:
		return "warning"
	}
	return "note"
}

func writeSARIF(w io.Writer, msgs []Message, opts WriteOptions) error {
	// Rules list only the codes that occur, in code order, so results can
	// point at them by index.
	seen := map[string]*MessageType{}
	for _, m := range msgs {
		seen[m.Type.Code] = m.Type
	}
	codes := make([]string, 0, len(seen))
	for c := range seen {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	index := map[string]int{}
	rules := []sarifRule{}
	for i, c := range codes {
		t := seen[c]
		index[c] = i
		rules = append(rules, sarifRule{ID: t.Code, Name: t.Name, ShortDescription: sarifText{t.Description}, DefaultConfiguration: sarifRuleCfg{sarifLevel(t.Level)}})
	}
	results := []sarifResult{}
	for _, m := range msgs {
		text := m.Text
		if m.Field != "" {
			text = m.Field + ": " + text
		}
		loc := sarifLocation{LogicalLocations: []sarifLogical{{Name: m.Resource.Name, FullyQualifiedName: m.Resource.Ref(), Kind: "resource"}}}
		if f := m.Origin().File; f != "" && f != "-" {
			loc.PhysicalLocation = &sarifPhysical{ArtifactLocation: sarifArtifact{URI: f}}
			if l := m.Origin().Line; l > 0 {
				loc.PhysicalLocation.Region = &sarifRegion{StartLine: l}
			}
		}
		results = append(results, sarifResult{RuleID: m.Type.Code, RuleIndex: index[m.Type.Code], Level: sarifLevel(m.Type.Level),
			Message: sarifText{m.Resource.Ref() + ": " + text}, Locations: []sarifLocation{loc}})
	}
	log := sarifLog{
		Schema:  "https://json.schemastore.org/sarif-2.1.0.json",
		Version: "2.1.0",
		Runs: []sarifRun{{
			Tool:    sarifTool{Driver: sarifDriver{Name: "mesh analyze", Version: opts.ToolVersion, Rules: rules}},
			Results: results,
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(log)
}
