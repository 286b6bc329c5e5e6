/* The probe's capture as a C callback for llama.cpp's cb_eval (services/generator/llamacpp/probe.py).
 *
 * llama.cpp asks the callback about every node of each compute graph (~940 per decode for SmolLM2);
 * a Python callback costs ~5 % of a single stream's speed in those calls alone. This one answers the
 * questions in C and copies the one wanted tensor into the caller's buffer. Built at set-up
 * (setup_llama_capture in scripts/setup.sh) against the ggml that llama-cpp-python ships; without
 * it the engine uses the same logic in Python. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "ggml-backend.h"
#include "ggml.h"

struct uq_capture {
    char name[64];     /* the tensor wanted, e.g. "l_out-14" */
    int32_t armed;     /* 0: want nothing (reading a prompt chunk whose hidden state nobody needs) */
    float *out;        /* where its values go, row after row */
    int64_t capacity;  /* floats that fit in out */
    int64_t filled;    /* floats written since the caller last reset it (one decode may compute the
                          tensor once per micro-batch); -1 when a tensor did not fit or was not f32 */
};

bool uq_capture_observe(struct ggml_tensor *t, bool ask, void *user_data) {
    struct uq_capture *c = (struct uq_capture *)user_data;
    if (ask) {
        return c->armed && strcmp(ggml_get_name(t), c->name) == 0;
    }
    int64_t n = ggml_nelements(t);
    if (c->filled < 0 || t->type != GGML_TYPE_F32 || c->filled + n > c->capacity) {
        c->filled = -1;
        return true;
    }
    ggml_backend_tensor_get(t, c->out + c->filled, 0, (size_t)n * sizeof(float));
    c->filled += n;
    return true; /* go on computing */
}
