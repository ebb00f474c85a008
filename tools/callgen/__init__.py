"""Synthetic two-party customer-service calls with ground truth.

Run ``python -m tools.callgen --set {samples,dynamics,bad,consistency} --out DIR
[--seed N] [--cache DIR]`` from the repository root. Calls are scripted
dialogues (``dialogues.py``) rendered per turn with Festival ``text2wave``
(voices ``slt`` = cmu_us_slt_arctic_hts, ``kal`` = kal_diphone; agent and
customer take one each, varying per call), resampled to 8 kHz with sox and
mixed (``timeline.py``) into 8 kHz stereo 16-bit FLAC with a low white noise
floor (-68 to -62 dBFS, never digital silence) and per-call level variation.
Rendered turns are cached by (voice, tempo, text) hash. Output is
deterministic for a given seed and cache contents.

Ground truth ``CALLID.json`` next to ``CALLID.flac`` (times in seconds from
the start of the file, rounded to ms)::

    call_id        str   e.g. "sample-billing-01"
    agent_id       str   e.g. "agent-01"
    domain         str   billing | shipping | printing | banking | telecom
    audio          str   file name of the FLAC, relative to the JSON
    sample_rate    int   8000
    channels       dict  {"agent": 0, "customer": 1} (swapped calls: agent 1, customer 0)
    duration       float seconds
    voices         dict  {"agent": "slt"|"kal", "customer": ...}
    levels_db      dict  agent_gain, customer_gain (dB vs. a -9 dBFS speech peak),
                         agent_noise_floor_dbfs, customer_noise_floor_dbfs
    greeting       dict  {"company": bool, "agent_name": bool, "offer_help": bool}:
                         which parts the agent's greeting contains
    turns          list  {turn_id "CALLID/tNNN", speaker "agent"|"customer", text,
                          start, end, labels [QA labels], kind "main"|"backchannel"|
                          "hold_update"}, sorted by start. start/end bound the
                         rendered speech (trimmed at -40 dB re. its loudest frame).
    holds          list  {start, end, with_music, permission_asked, customer_agreed,
                          status_updates [{start, end}]}; a hold runs from when the
                         customer is put on hold until the agent's return turn
                         starts; status updates are agent turns inside it.
    hold_music     list  {start, end} spans of synthesized music on the agent channel
    overlaps       list  {start, end, interrupter, interrupted, kind "interruption"|
                          "backchannel", interrupter_turn_id, interrupted_turn_id};
                         interruptions overlap the other party by > 1 s.
    non_talk       list  {start, end, during_hold}: both channels without speech for
                         >= 3 s, from the rendered timeline (typing clicks and hold
                         music do not count as talk).
    typing         list  {start, end, clicks}: bursts of keystroke clicks (5-15 ms
                         broadband transients, 80-250 ms apart) on the agent channel.
    venting        list  {start, end, turn_ids}: consecutive customer sentences with
                         negative wording, rendered +6 dB louder and 8 % faster.
    agent_pace     dict  {mean_words_per_second, rushed_turns [{turn_id, tempo,
                          words_per_second}]}: rushed turns are sped up with sox tempo.

QA labels (``script.QA_LABELS``): greeting, identification (the agent names the
company and/or themself), offer_help, empathy, apology, thanks, courtesy,
paraphrase, hold_request, hold_update, next_steps, blame, overwhelm, jargon,
rushing, question, complaint, upset, supervisor_request, satisfaction.
Backchannel turns carry no labels.

The text-level knowledge-consistency generator is ``consistency.py``.
"""
