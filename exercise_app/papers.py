"""The papers the assistant answers questions about, and the prompt built from them."""

PAPERS = {
    "retrieval": (
        "Retrieval-Augmented Generation for Long Documents. We pair a 7B language model with a "
        "dense retriever over 4 million passages. On three long-document QA benchmarks, accuracy "
        "rises by 9 to 14 points over the model alone, at 1.6x the latency per query."
    ),
    "attention": (
        "Sparse Attention at Scale. Replacing dense attention with a learned block-sparse pattern "
        "cuts inference cost by 38% on 32k-token contexts while matching perplexity within 0.2, "
        "but degrades exact-copy tasks by 6 points."
    ),
    "tuning": (
        "Instruction Tuning with Synthetic Feedback. Models tuned on 60k synthetic preference "
        "pairs are preferred by raters 58% of the time over the base model; calibration of "
        "stated confidence does not improve."
    ),
}

SYSTEM_PROMPT = (
    "You are a research assistant. Answer the user's question using only these abstracts, "
    "in two or three sentences.\n\n"
    + "\n\n".join(f"[{name}] {abstract}" for name, abstract in PAPERS.items())
)


def build_messages(question: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": question},
    ]
