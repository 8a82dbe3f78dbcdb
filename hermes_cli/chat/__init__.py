"""The interactive chat: the REPL (repl), its slash-commands (commands), completion of
commands and paths (completion), and streaming output (render). Commands talk to the
chat only through core.chat_session.ChatSession and the small output protocol in ui."""
