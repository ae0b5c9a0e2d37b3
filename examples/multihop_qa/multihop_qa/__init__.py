"""An example dspyops plugin module: multi-hop question answering over a corpus."""

from multihop_qa.module import MultiHopQA

__all__ = ["MultiHopQA"]
