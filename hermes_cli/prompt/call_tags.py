"""The Hermes tool-call tags, as the models write them (Hermes 2 Pro's are single tokens in
its vocabulary; elsewhere text): one definition for the prompt, the parser and the
grammars."""

OPEN = "<tool_call>"
CLOSE = "</tool_call>"
# A tool turn's result blocks: modes/tools/protocol writes them, served/backend reads them.
RESPONSE_OPEN = "<tool_response>\n"
RESPONSE_CLOSE = "\n</tool_response>"
