"""Retrieval-augmented generation at inference scale: document stores, retrievers (BM25, dense with any encoder),
RAG corpora, DRAG / IterDRAG prompting with exact effective-context-length accounting (Yue et al., ICLR'25)."""

from lcjax.rag.corpus import CORPORA, Question, RagCorpus
from lcjax.rag.drag import (RagResult, RagStrategy, answer, answer_batch, build_prompt, closed_book_prompt,
                             parse_strategy)
from lcjax.rag.retriever import ENCODERS, RETRIEVERS, DenseRetriever, Encoder, Hit, Retriever
from lcjax.rag.store import Document, DocumentStore

__all__ = ["CORPORA", "ENCODERS", "RETRIEVERS", "DenseRetriever", "Document", "DocumentStore", "Encoder", "Hit",
           "Question", "RagCorpus", "RagResult", "RagStrategy", "Retriever", "answer", "answer_batch", "build_prompt",
           "closed_book_prompt", "parse_strategy"]
