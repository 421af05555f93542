import { Flags } from '@oclif/core';

/** --lab: which lab a `tandem lab …` command acts on, when several run. */
export const labFlag = Flags.string({ description: 'lab prefix (when several labs run)', helpValue: 'PREFIX' });
