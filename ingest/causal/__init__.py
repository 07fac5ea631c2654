"""Causal checks of traced edges: project an edge's singular directions out of its upstream
output (:mod:`.intervene`) and measure the change in a metric against a control
(:mod:`.verify`)."""
