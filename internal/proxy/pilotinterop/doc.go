// Package pilotinterop holds tests that feed mesh-proxy the configuration
// mesh-pilot generates, over a real ADS stream, so a field one side sends and
// the other cannot honour shows up as a failing test rather than a NACK in a
// running mesh. It is kept apart from the agent tests so that a half-edited
// pilot never stops the proxy's own tests from building.
package pilotinterop
