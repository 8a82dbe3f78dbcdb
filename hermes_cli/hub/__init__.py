"""Models from the Hugging Face Hub: references (refs), the local cache read without the
network (cache), sha256 verification (verify), the download itself (download), and the
reference -> local file step every command uses (resolve)."""
