"""The graph schema: node and relationship types, their keys and typed properties.

One definition serves every backend: LadybugDB needs it as DDL (typed tables),
Neo4j as uniqueness constraints on the keys. ``docs/schema.md`` explains each
type with example Cypher.

Every firing is a node, and a per-prompt ``SIGNAL`` relationship runs *from the
upstream head's firing at the token where it writes* (or from a ``Site``: the
component at that token, when it is not a head firing there) *to the
downstream firing*. A path of SIGNAL relationships through Firing nodes is
therefore a route that information can take in one prompt, token by token,
with no extra filters. ``CARRIES`` relationships between components aggregate
a run.

Per-prompt relationships never touch the shared Component nodes: firings and
sites name their component and prompt as properties. (LadybugDB rewrites a
node's adjacency on every bulk load that adds to it; relationships to hub
nodes made each batch's load slower than the last.)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NodeType:
    name: str
    properties: tuple[tuple[str, str], ...]  # (name, type); the first is the key

    @property
    def key(self) -> str:
        return self.properties[0][0]


@dataclass(frozen=True)
class RelType:
    name: str
    pairs: tuple[tuple[str, str], ...]  # (FROM node type, TO node type)
    properties: tuple[tuple[str, str], ...]


STRING, INT, FLOAT, BOOL = "STRING", "INT64", "DOUBLE", "BOOLEAN"
INTS, FLOATS, STRINGS = "INT64[]", "DOUBLE[]", "STRING[]"

# fmt: off
NODES = (
    NodeType("Model", (("key", STRING), ("n_layers", INT), ("n_heads", INT), ("d_model", INT),
                       ("d_head", INT))),
    NodeType("Run", (("key", STRING), ("model", STRING), ("task", STRING), ("params", STRING),
                     ("status", STRING), ("started", STRING), ("finished", STRING),
                     ("prompts", INT), ("batches", INT), ("done_batches", INTS),
                     ("firings", INT), ("edges", INT))),
    NodeType("Component", (("key", STRING), ("model", STRING), ("name", STRING),
                           ("kind", STRING), ("layer", INT), ("head", INT))),
    NodeType("SingularVector", (("key", STRING), ("model", STRING), ("head_name", STRING),
                                ("layer", INT), ("head", INT), ("index", INT),
                                ("sigma", FLOAT), ("query_tokens", STRINGS),
                                ("query_projections", FLOATS), ("key_tokens", STRINGS),
                                ("key_projections", FLOATS))),
    # counterfactual: the prompt's counterfactual tokens (the counterfactual baseline)
    NodeType("Prompt", (("key", STRING), ("run", STRING), ("id", STRING), ("text", STRING),
                        ("tokens", INTS), ("words", STRINGS), ("roles", STRING),
                        ("batch", INT), ("counterfactual", INTS))),
    NodeType("Site", (("key", STRING), ("run", STRING), ("prompt", STRING),
                      ("component", STRING), ("kind", STRING), ("layer", INT), ("head", INT),
                      ("token", INT), ("role", STRING), ("batch", INT))),
    NodeType("Firing", (("key", STRING), ("run", STRING), ("prompt", STRING),
                        ("head_name", STRING), ("layer", INT), ("head", INT), ("dest", INT),
                        ("source", INT), ("dest_role", STRING), ("source_role", STRING),
                        ("attention", FLOAT), ("score", FLOAT), ("svs", INTS),
                        ("terms", FLOATS), ("traced", BOOL), ("batch", INT))),
    # Seeding from the prediction: what the model predicts at a prompt's answer position,
    # and (PREDICTS) the seed firings that carry it, each with its share of the logit.
    NodeType("Prediction", (("key", STRING), ("run", STRING), ("prompt", STRING),
                            ("dest", INT), ("answer", INT), ("wrong", INT),
                            ("answer_set", INTS), ("wrong_set", INTS),
                            ("answer_word", STRING), ("wrong_word", STRING),
                            ("measure", STRING), ("value", FLOAT), ("baseline", FLOAT),
                            ("correct", BOOL),
                            ("seeds", INT), ("batch", INT))),
    # A batch's partial aggregates (the run's CARRIES are their sums): per upstream, head,
    # side and role, its prompts, weight sum and count, S counts and relevance sum
    NodeType("Partial", (("key", STRING), ("run", STRING), ("upstream", STRING),
                         ("head", STRING), ("side", STRING), ("role", STRING), ("batch", INT),
                         ("prompts", INT), ("weight_sum", FLOAT), ("weights", INT),
                         ("svs", INTS), ("sv_counts", INTS), ("relevance_sum", FLOAT))),
    # The route index (headgraph.queries.inbound), written when a run finishes: per node of
    # the run's graph (a component at a token role, 7.1@END), the edges into it (upstream
    # node keys, one per line; sides; shares summed over the run, as float64), strongest
    # first, the prompts it is entered in, where its pages start, and its fewest hops from
    # each component (reach); the pages hold the rows. Long values are packed (compressed
    # where shorter: headgraph.queries.packing)
    NodeType("Inbound", (("key", STRING), ("run", STRING), ("node", STRING),
                         ("component", STRING), ("role", STRING), ("ups", STRING),
                         ("sides", INTS), ("totals", STRING), ("prompts", INTS),
                         ("pages", INTS), ("reach", STRING))),
    NodeType("InboundPage", (("key", STRING), ("run", STRING), ("rows", STRING))),
    # the edges into a node past the header's first (queries.inbound.edge_chunks)
    NodeType("InboundEdges", (("key", STRING), ("run", STRING), ("ups", STRING),
                              ("sides", INTS), ("totals", STRING))),
    # The run's circuit kept ready (headgraph.queries.circuit_index), written with the
    # route index: its node names (one per line) and which of them fire, and its links
    # (upstream node, head node, side), most relevant first, packed in pages
    NodeType("CircuitIndex", (("key", STRING), ("run", STRING), ("names", STRING),
                              ("fires", INTS), ("links", INT), ("pages", INT))),
    NodeType("CircuitPage", (("key", STRING), ("run", STRING), ("page", INT),
                             ("rows", STRING))),
    # Every head's redundancy kept ready (headgraph.queries.redundancy_index), written with
    # the route index: disjoint routes per prompt (base64 of int32), the critical
    # components and the substitute groups (JSON)
    NodeType("RedundancyIndex", (("key", STRING), ("run", STRING), ("head", STRING),
                                 ("connectivity", STRING), ("criticality", STRING),
                                 ("substitutes", STRING))),
    # The singular vectors each head's firings use, and their writers (JSON), kept with the
    # route index (headgraph.queries.feature_use)
    NodeType("FeatureIndex", (("key", STRING), ("run", STRING), ("head", STRING),
                              ("use", STRING))),
    NodeType("Effect", (("key", STRING), ("run", STRING), ("upstream", STRING), ("head", STRING),
                        ("side", STRING), ("mode", STRING), ("boost", BOOL), ("metric", STRING),
                        ("prompts", INT), ("clean", FLOAT), ("effect", FLOAT),
                        ("control", FLOAT), ("difference", FLOAT), ("stderr", FLOAT),
                        ("measured", STRING))),
    # People's notes, kept with the graph: a label on a component, a singular vector or an
    # edge of a model (``target`` 1.0, 1.0:0, 0.2-1.0:query), and a saved set of a run's edges.
    NodeType("Label", (("key", STRING), ("model", STRING), ("target", STRING),
                       ("kind", STRING), ("text", STRING), ("author", STRING),
                       ("created", STRING))),
    NodeType("SavedCircuit", (("key", STRING), ("run", STRING), ("name", STRING),
                              ("edges", STRINGS), ("note", STRING), ("author", STRING),
                              ("created", STRING))),
)

RELS = (
    RelType("SIGNAL", (("Firing", "Firing"), ("Site", "Firing")),
            # run, prompt, head, role, S and its terms: on the target Firing
            # relevance: the edge's share of the prediction (split evenly over the copies
            # of an edge that leaves several firings of its upstream head at the token)
            (("upstream", STRING), ("side", STRING), ("token", INT), ("weight", FLOAT),
             ("share", FLOAT), ("batch", INT), ("relevance", FLOAT))),
    RelType("PREDICTS", (("Firing", "Prediction"), ("Site", "Prediction")),
            (("upstream", STRING), ("token", INT), ("weight", FLOAT), ("share", FLOAT),
             ("batch", INT))),
    RelType("HAS_SV", (("Component", "SingularVector"),), ()),
    RelType("CARRIES", (("Component", "Component"),),
            (("run", STRING), ("side", STRING), ("role", STRING), ("prompts", INT),
             ("share_of_prompts", FLOAT), ("mean_weight", FLOAT), ("svs", INTS),
             ("sv_counts", INTS), ("relevance", FLOAT))),
)
# fmt: on

NODE = {n.name: n for n in NODES}
REL = {r.name: r for r in RELS}


def ladybug_ddl() -> list[str]:
    """CREATE statements for LadybugDB (idempotent: IF NOT EXISTS)."""
    out = []
    for n in NODES:
        columns = ", ".join(f"`{p}` {t}" for p, t in n.properties)
        out.append(f"CREATE NODE TABLE IF NOT EXISTS {n.name}({columns}, PRIMARY KEY(`{n.key}`))")
    for r in RELS:
        pairs = ", ".join(f"FROM {a} TO {b}" for a, b in r.pairs)
        columns = "".join(f", `{p}` {t}" for p, t in r.properties)
        out.append(f"CREATE REL TABLE IF NOT EXISTS {r.name}({pairs}{columns})")
    return out


def neo4j_ddl() -> list[str]:
    """Uniqueness constraints on the node keys, for Neo4j 5."""
    return [
        f"CREATE CONSTRAINT {n.name.lower()}_key IF NOT EXISTS "
        f"FOR (n:{n.name}) REQUIRE n.key IS UNIQUE"
        for n in NODES
    ]
