/*
 * fte_train.h - training (forward, backward, AdamW, LoRA, checkpoints) and
 * inference (teacher-forced loss, generation with a KV cache).
 */
#ifndef FTE_TRAIN_H
#define FTE_TRAIN_H

#include "fte_model.h"

#endif
