#include <stdio.h>
#include "resnet.h"
int main(void) { printf("resnet %s\n", RN_VERSION); return 0; }
