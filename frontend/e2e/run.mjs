// End-to-end tests against a running three-node cluster are not written yet: they need the
// server binaries and the simulator publisher. See frontend/README.md ("End-to-end tests").
console.log('e2e: no end-to-end tests yet (they need a running cluster); see frontend/README.md');
