"""The replica core: the protocol-neutral pipeline (prep -> order -> durable log -> apply ->
complete) over the replicated state, the commands front ends submit, and their codec."""
